"""The model types, in a module light enough for the command line to import before TensorFlow."""

from typing import Literal

ModelType = Literal["softmax", "cnn"]
MODEL_TYPES: tuple[ModelType, ...] = ("cnn", "softmax")
