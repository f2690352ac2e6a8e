"""Errors that the command line reports as one line, without a traceback."""


class MnistTrainError(Exception):
    """Base class for every error the training package reports to a person."""


class DataError(MnistTrainError):
    """The MNIST files are missing, unreachable, corrupt or not what they claim to be."""


class ArtifactError(MnistTrainError):
    """A model artifact is incomplete, of an unknown format, or cannot be written."""


class ImageError(MnistTrainError):
    """An image cannot be turned into an MNIST-style input."""
