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

from mnist_core.artifact import (
    ArtifactMetadata,
    Calibration,
    ExtraData,
    load_artifact,
    save_artifact,
)
from mnist_core.calibration import (
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
)
from mnist_core.corrections import EXTRA_WEIGHT, load_corrections
from mnist_core.imaging import model_input
from mnist_core.model_types import ModelType
from mnist_core.verdicts import fit_thresholds
from mnist_train.augment import augment_batch
from mnist_train.data import VALIDATION_EXAMPLES, Mnist, Split, split_training_set
from mnist_train.evaluate import Evaluation, evaluate, evaluation_of, probabilities_of
from mnist_train.export import check, convert
from mnist_train.models import average, build
from mnist_train.negatives import NEGATIVE, negatives

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

RECALIBRATION_IMAGES = 4096
DEFAULTS: dict[ModelType, dict[str, float | int]] = {
    # The original TensorFlow 1 tutorial: plain SGD at 0.5 on batches of 100.
    "softmax": {"epochs": 5, "batch_size": 100, "learning_rate": 0.5},
    "cnn": {"epochs": 15, "batch_size": 128, "learning_rate": 0.003, "ensemble": 1},
}
# Outlier exposure (``mnist_train.negatives``): non-digits, as a share of the digits trained on,
# each weighing this much in the loss against a digit's 1 (Hendrycks et al. 2019 use 0.5).
NEGATIVES_SHARE: dict[ModelType, float] = {"softmax": 0.0, "cnn": 0.25}
NEGATIVE_WEIGHT = 0.5
# Fine-tuning a trained model (``--init``): a short run at a tenth of the learning rate.
FINE_TUNING: dict[str, float | int] = {"epochs": 2, "learning_rate_factor": 0.1}


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
    ensemble: int | None = None  # networks trained apart and averaged (the CNN only)
    # Corrections (``mnist-api export-labels``) mixed into the training images, their held-out
    # fifth left out; each weighs ``extra_weight`` MNIST images in the loss.
    extra: Path | None = None
    extra_weight: float = EXTRA_WEIGHT
    init: Path | None = None  # fine-tune this artifact's model instead of starting over
    # Non-digits trained toward the uniform answer, as a share of the digits; None: the default.
    negatives: float | None = None
    verbose: int = field(default_factory=lambda: 1 if sys.stdout.isatty() else 2)

    def resolved(self) -> tuple[int, int, float, bool]:
        d = DEFAULTS[self.model_type]
        epochs, learning_rate = float(d["epochs"]), float(d["learning_rate"])
        if self.init is not None:
            epochs = FINE_TUNING["epochs"]
            learning_rate *= FINE_TUNING["learning_rate_factor"]
        return (
            int(self.epochs if self.epochs is not None else epochs),
            int(self.batch_size if self.batch_size is not None else d["batch_size"]),
            float(self.learning_rate if self.learning_rate is not None else learning_rate),
            self.augmentation if self.augmentation is not None else self.model_type == "cnn",
        )

    def resolved_negatives(self) -> float:
        return self.negatives if self.negatives is not None else NEGATIVES_SHARE[self.model_type]

    def resolved_ensemble(self) -> int:
        if self.ensemble is not None:
            return self.ensemble
        return int(DEFAULTS[self.model_type].get("ensemble", 1))


@dataclass(frozen=True)
class TrainResult:
    artifact_dir: Path
    metadata: ArtifactMetadata
    evaluation: Evaluation  # on the test set
    validation: Evaluation
    split: Split


def _recalibrate_batch_norm(model: keras.Model, images: npt.NDArray[np.float32]) -> None:
    """Set every batch-norm layer's moving statistics to those of one large batch of training
    images (``RECALIBRATION_IMAGES`` of them). After a short run (a few dozen steps) the moving
    averages are still far from the data's statistics and the model predicts badly in inference
    mode; after a long run this changes little."""
    import keras

    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not layers:
        return
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    try:
        model(images, training=True)
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum


def _fit_member(
    config: TrainConfig,
    index: int,
    x_train: npt.NDArray[np.float32],
    y_train: npt.NDArray[np.uint8],
    weights: npt.NDArray[np.float32] | None,
    validation_data: tf.data.Dataset,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    augmentation: bool,
    initial: keras.Model | None = None,
) -> keras.Model:
    """Build (or take ``initial``, to fine-tune it) and fit one network. Member ``index`` of an
    ensemble starts from its own seed (``seed + index``): other initial weights, another order
    of batches, other augmentations. ``weights``: each image's weight in the loss. A label of
    ``NEGATIVE`` (a non-digit) has the uniform distribution as its target."""
    import keras
    import tensorflow as tf

    seed = config.seed + index
    keras.utils.set_random_seed(seed)
    name = "mnist_cnn" if index == 0 else f"mnist_cnn_{index}"
    model = initial if initial is not None else build(config.model_type, name)
    steps = epochs * int(np.ceil(len(y_train) / batch_size))
    optimizer: keras.optimizers.Optimizer
    if config.model_type == "softmax":
        optimizer = keras.optimizers.SGD(learning_rate=learning_rate)
    else:
        schedule = keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=steps, alpha=0.01
        )
        optimizer = keras.optimizers.Adam(learning_rate=schedule)
    model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])

    # Shuffling indices and gathering whole batches keeps the input pipeline cheap.
    images, labels = tf.constant(x_train), tf.constant(y_train)
    loss_weights = tf.constant(weights) if weights is not None else None
    dataset = (
        tf.data.Dataset.range(len(y_train))
        .shuffle(len(y_train), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .enumerate()
    )

    def gather(batch_index: tf.Tensor, batch: tf.Tensor) -> tuple[tf.Tensor, ...]:
        x = tf.gather(images, batch)
        if augmentation:
            x = augment_batch(x, batch_index, seed)
        y = _targets(tf.gather(labels, batch))
        if loss_weights is None:
            return x, y
        return x, y, tf.gather(loss_weights, batch)

    dataset = dataset.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    # Each epoch ends with the accuracy on the held-out images ("val_accuracy"); the training
    # accuracy counts a non-digit as right when the answer is a 0 (the argmax of a flat target).
    validation_data = validation_data.map(lambda x, y: (x, _targets(y)))
    model.fit(
        dataset,
        epochs=epochs,
        shuffle=False,
        validation_data=validation_data,
        verbose=config.verbose,
    )
    return model


def _targets(labels: tf.Tensor) -> tf.Tensor:
    """One-hot rows for digits, the uniform row for ``NEGATIVE``."""
    import tensorflow as tf

    one_hot = tf.one_hot(tf.cast(labels, tf.int32), 10)
    return tf.where(labels[:, tf.newaxis] == NEGATIVE, tf.fill(tf.shape(one_hot), 0.1), one_hot)


def train(config: TrainConfig, data: Mnist, output_root: Path) -> TrainResult:
    import keras
    import tensorflow as tf

    epochs, batch_size, learning_rate, augmentation = config.resolved()
    ensemble = config.resolved_ensemble()
    if epochs < 1 or batch_size < 1 or learning_rate <= 0 or ensemble < 1:
        raise ValueError("epochs, batch size, learning rate and ensemble must be positive")
    if ensemble > 1 and config.model_type != "cnn":
        raise ValueError("only the CNN trains as an ensemble")
    if ensemble > 1 and config.init is not None:
        raise ValueError("a fine-tuning (--init) trains the one model it starts from")
    if config.extra_weight <= 0:
        raise ValueError("the weight of the corrections must be positive")
    negative_share = config.resolved_negatives()
    if negative_share < 0:
        raise ValueError("the share of non-digits cannot be negative")
    initial, init_from, split_seed = None, None, config.seed
    if config.init is not None:
        start = load_artifact(config.init)
        if start.metadata.model_type != config.model_type:
            raise ValueError(
                f"{config.init} holds a {start.metadata.model_type} model, not {config.model_type}"
            )
        initial, init_from = start.model, start.metadata.version
        # The images the model started from never saw stay held out: its own split.
        if start.metadata.hyperparameters.validation_seed is not None:
            split_seed = start.metadata.hyperparameters.validation_seed
    split = split_training_set(
        len(data.train_labels), config.validation_examples, split_seed, config.train_examples
    )
    tf.config.experimental.enable_op_determinism()

    # Load and scale. The test set is only looked at in "Evaluate", for the report.
    x_train, y_train = model_input(data.train_images[split.train]), data.train_labels[split.train]
    x_val = model_input(data.train_images[split.validation])
    y_val = data.train_labels[split.validation]
    x_test, y_test = model_input(data.test_images), data.test_labels
    weights, extra = None, None
    if config.extra is not None:  # the corrections' training part, weighted
        corrections = load_corrections(config.extra)
        trained_on, held_out = corrections.split()
        weights = np.concatenate(
            [np.ones(len(y_train)), np.full(len(trained_on), config.extra_weight)]
        ).astype(np.float32)
        x_train = np.concatenate([x_train, model_input(trained_on.images)])
        y_train = np.concatenate([y_train, trained_on.labels])
        extra = ExtraData(
            file=str(config.extra),
            sha256=corrections.sha256,
            examples=len(trained_on),
            held_out=len(held_out),
            weight=config.extra_weight,
        )

    # Non-digits (outlier exposure), drawn from the training seed: never the evaluation's.
    trained_negatives = round(negative_share * len(y_train))
    if trained_negatives:
        if weights is None:
            weights = np.ones(len(y_train), dtype=np.float32)
        x_train = np.concatenate([x_train, model_input(negatives(trained_negatives, config.seed))])
        y_train = np.concatenate([y_train, np.full(trained_negatives, NEGATIVE, dtype=np.uint8)])
        weights = np.concatenate(
            [weights, np.full(trained_negatives, NEGATIVE_WEIGHT, dtype=np.float32)]
        )

    # Build and fit each member (one, or an ensemble averaged into one model at the end).
    validation_data = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(1000)
    members = []
    started = time.perf_counter()
    for index in range(ensemble):
        member = _fit_member(
            config, index, x_train, y_train, weights, validation_data,
            epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
            augmentation=augmentation, initial=initial,
        )  # fmt: skip
        # Training images only, digits and non-digits in the proportions of the batches.
        sample = np.random.default_rng(config.seed).permutation(len(x_train))
        _recalibrate_batch_norm(member, x_train[np.sort(sample[:RECALIBRATION_IMAGES])])
        members.append(member)
    training_seconds = time.perf_counter() - started
    model = average(members)
    member_validation = []  # each member's own, for an ensemble
    if len(members) > 1:
        member_validation = [evaluate(member, x_val, y_val).accuracy for member in members]

    # Evaluate: the validation split, and the temperature fitted on it; then the test set, once.
    on_validation = probabilities_of(model, x_val)
    validation = evaluation_of(on_validation, y_val)
    temperature = fit_temperature(on_validation, y_val)
    on_test = probabilities_of(model, x_test)
    evaluation = evaluation_of(on_test, y_test)
    calibration = Calibration(
        temperature=temperature,
        validation_nll_before=negative_log_likelihood(on_validation, y_val),
        validation_nll_after=negative_log_likelihood(
            apply_temperature(on_validation, temperature), y_val
        ),
        test_ece_before=expected_calibration_error(on_test, y_test),
        test_ece_after=expected_calibration_error(apply_temperature(on_test, temperature), y_test),
    )

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
                "ensemble": ensemble,
                "member_validation_accuracy": member_validation,
                "seed": config.seed,
                "train_examples": len(y_train) - trained_negatives,
                "augmentation": augmentation,
                "validation_seed": split_seed,
                "negatives": trained_negatives,
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
            "calibration": calibration.model_dump(),
            "verdicts": fit_thresholds(apply_temperature(on_validation, temperature)).model_dump(),
            "extra": extra.model_dump() if extra is not None else None,
            "init_from": init_from,
        },
        lite=lite,
    )
    return TrainResult(artifact_dir, metadata, evaluation, validation, split)
