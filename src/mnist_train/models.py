"""The two classifiers. Both take 28x28x1 float inputs in MNIST polarity (white ink on black,
values in [0, 1]) and end in a softmax over the ten digits."""

from __future__ import annotations

import keras
from keras import layers

from mnist_core.model_types import MODEL_TYPES, ModelType

__all__ = ["MODEL_TYPES", "ModelType", "average", "build", "build_cnn", "build_softmax"]
INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10


def build_softmax() -> keras.Model:
    """The original system's model: softmax regression, y = softmax(x W + b)."""
    inputs = keras.Input(shape=INPUT_SHAPE, name="image")
    x = layers.Flatten()(inputs)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="softmax_regression")


def _conv_block(x: keras.KerasTensor, filters: int) -> keras.KerasTensor:
    x = layers.Conv2D(filters, 3, use_bias=False)(x)
    x = layers.BatchNormalization(momentum=0.9)(x)
    x = layers.Activation("relu")(x)
    return layers.MaxPooling2D()(x)


def build_cnn(name: str = "mnist_cnn") -> keras.Model:
    """A compact convolutional network: two 3x3 conv blocks (32 and 64 filters) with batch
    norm and max-pooling, a 128-unit dense layer, dropout and a softmax (about 226k parameters,
    sized to train in minutes on two CPU cores)."""
    inputs = keras.Input(shape=INPUT_SHAPE, name="image")
    x = _conv_block(inputs, 32)  # 26x26 -> 13x13
    x = _conv_block(x, 64)  # 11x11 -> 5x5
    x = layers.Flatten()(x)
    x = layers.Dense(128, use_bias=False)(x)
    x = layers.BatchNormalization(momentum=0.9)(x)
    x = layers.Activation("relu")(x)
    x = layers.Dropout(0.4)(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


def build(model_type: ModelType, name: str | None = None) -> keras.Model:
    if model_type == "softmax":
        return build_softmax()
    return build_cnn(name or "mnist_cnn")


def average(members: list[keras.Model]) -> keras.Model:
    """One model whose answer is the mean of the members' probabilities: an ensemble of networks
    trained apart (other seeds, other orders), saved, converted and served as a single model."""
    if len(members) == 1:
        return members[0]
    inputs = keras.Input(shape=INPUT_SHAPE, name="image")
    outputs = layers.Average(name="probabilities")([member(inputs) for member in members])
    return keras.Model(inputs, outputs, name=f"mnist_cnn_x{len(members)}")
