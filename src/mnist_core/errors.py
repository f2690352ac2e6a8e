"""Errors reported to a person as one line, without a traceback."""


class MnistError(Exception):
    """Base class of every error the commands report to a person."""


class ArtifactError(MnistError):
    """A model artifact is incomplete, of an unknown format, or cannot be written."""


class ImageError(MnistError):
    """An image cannot be turned into an MNIST-style input."""
