"""Training, in the order of Keras' MNIST convnet example: load and scale, build, fit, evaluate,
convert for LiteRT (checked against TensorFlow on the test set), save.

A seeded validation split is held out of the 60,000 training images. Everything decided while
training (Keras' per-epoch ``val_accuracy``, anything tuned by hand from it) looks at those images
only; the test set is evaluated once, at the end, for the report."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from mnist_core.artifact import ArtifactMetadata, save_artifact
from mnist_core.imaging import model_input
from mnist_core.model_types import ModelType
from mnist_train.augment import augment_batch
from mnist_train.data import VALIDATION_EXAMPLES, Mnist, Split, split_training_set
from mnist_train.evaluate import Evaluation, evaluate
from mnist_train.export import check, convert
from mnist_train.models import build

if TYPE_CHECKING:
    import keras

RECALIBRATION_IMAGES = 4096
DEFAULTS: dict[ModelType, dict[str, float | int]] = {
    # The original TensorFlow 1 tutorial: plain SGD at 0.5 on batches of 100.
    "softmax": {"epochs": 5, "batch_size": 100, "learning_rate": 0.5},
    "cnn": {"epochs": 15, "batch_size": 128, "learning_rate": 0.003},
}


@dataclass(frozen=True)
class TrainConfig:
    model_type: ModelType = "cnn"
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    seed: int = 1
    train_examples: int | None = None  # a subset of the training set, for quick runs and tests
    validation_examples: int = VALIDATION_EXAMPLES  # held out of the training set
    augmentation: bool | None = None  # default: on for the CNN, off for softmax
    verbose: int = field(default_factory=lambda: 1 if sys.stdout.isatty() else 2)

    def resolved(self) -> tuple[int, int, float, bool]:
        d = DEFAULTS[self.model_type]
        return (
            int(self.epochs if self.epochs is not None else d["epochs"]),
            int(self.batch_size if self.batch_size is not None else d["batch_size"]),
            float(self.learning_rate if self.learning_rate is not None else d["learning_rate"]),
            self.augmentation if self.augmentation is not None else self.model_type == "cnn",
        )


@dataclass(frozen=True)
class TrainResult:
    artifact_dir: Path
    metadata: ArtifactMetadata
    evaluation: Evaluation  # on the test set
    validation: Evaluation
    split: Split


def _recalibrate_batch_norm(model: keras.Model, images: npt.NDArray[np.float32]) -> None:
    """Set every batch-norm layer's moving statistics to those of one large batch of training
    images. After a short run (a few dozen steps) the moving averages are still far from the
    data's statistics and the model predicts badly in inference mode; after a long run this
    changes little."""
    import keras

    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not layers:
        return
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    try:
        model(images[:RECALIBRATION_IMAGES], training=True)
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum


def train(config: TrainConfig, data: Mnist, output_root: Path) -> TrainResult:
    import keras
    import tensorflow as tf

    epochs, batch_size, learning_rate, augmentation = config.resolved()
    if epochs < 1 or batch_size < 1 or learning_rate <= 0:
        raise ValueError("epochs, batch size and learning rate must be positive")
    split = split_training_set(
        len(data.train_labels), config.validation_examples, config.seed, config.train_examples
    )
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()

    # Load and scale. The test set is only looked at in "Evaluate", for the report.
    x_train, y_train = model_input(data.train_images[split.train]), data.train_labels[split.train]
    x_val = model_input(data.train_images[split.validation])
    y_val = data.train_labels[split.validation]
    x_test, y_test = model_input(data.test_images), data.test_labels

    # Build.
    model = build(config.model_type)
    steps = epochs * int(np.ceil(len(y_train) / batch_size))
    optimizer: keras.optimizers.Optimizer
    if config.model_type == "softmax":
        optimizer = keras.optimizers.SGD(learning_rate=learning_rate)
    else:
        schedule = keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=steps, alpha=0.01
        )
        optimizer = keras.optimizers.Adam(learning_rate=schedule)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    # Fit. Shuffling indices and gathering whole batches keeps the input pipeline cheap.
    images, labels = tf.constant(x_train), tf.constant(y_train)
    dataset = (
        tf.data.Dataset.range(len(y_train))
        .shuffle(len(y_train), seed=config.seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .enumerate()
    )
    seed = config.seed

    def gather(index: tf.Tensor, batch: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        x = tf.gather(images, batch)
        if augmentation:
            x = augment_batch(x, index, seed)
        return x, tf.gather(labels, batch)

    dataset = dataset.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    started = time.perf_counter()
    # Each epoch ends with the accuracy on the held-out images ("val_accuracy").
    validation_data = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(1000)
    model.fit(
        dataset,
        epochs=epochs,
        shuffle=False,
        validation_data=validation_data,
        verbose=config.verbose,
    )
    training_seconds = time.perf_counter() - started

    _recalibrate_batch_norm(model, x_train)  # training images only

    # Evaluate: the validation split, then the test set, once.
    validation = evaluate(model, x_val, y_val)
    evaluation = evaluate(model, x_test, y_test)

    # Convert for LiteRT, which serves it: refused unless it reads the test set as TensorFlow does.
    lite = convert(model)
    lite_export = check(model, lite, data.test_images)

    # Save.
    artifact_dir, metadata = save_artifact(
        model,
        output_root,
        model_type=config.model_type,
        build_metadata={
            "hyperparameters": {
                "epochs": epochs,
                "batch_size": batch_size,
                "learning_rate": learning_rate,
                "optimizer": "sgd" if config.model_type == "softmax" else "adam-cosine",
                "seed": config.seed,
                "train_examples": len(y_train),
                "augmentation": augmentation,
                "validation_seed": config.seed,
            },
            "test_accuracy": evaluation.accuracy,
            "validation_accuracy": validation.accuracy,
            "validation_examples": len(y_val),
            "per_class_accuracy": evaluation.per_class_accuracy,
            "training_seconds": round(training_seconds, 2),
            "tensorflow_version": tf.__version__,
            "keras_version": keras.__version__,
            "data_checksums": data.checksums,
            "lite": lite_export.model_dump(),
        },
        lite=lite,
    )
    return TrainResult(artifact_dir, metadata, evaluation, validation, split)
