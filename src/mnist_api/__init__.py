"""The digit-recognition HTTP service: uploads in, MNIST-style inference, stored predictions out."""

__version__ = "1.0.0"
