"""Errors of the training package; ``mnist-train`` reports every ``MnistError`` as one line."""

from mnist_core.errors import MnistError


class DataError(MnistError):
    """The MNIST files are missing, unreachable, corrupt or not what they claim to be."""
