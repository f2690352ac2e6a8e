"""The validation split: held out of the training file by a seeded permutation, never trained on,
apart from the test set, and the only thing training looks at; the test set is for the report."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mnist_core.artifact import load_artifact
from mnist_core.imaging import model_input
from mnist_train.data import VALIDATION_EXAMPLES, Mnist, split_training_set
from mnist_train.evaluate import evaluate
from mnist_train.train import TrainConfig, TrainResult, train

# Keras 3.15 on TensorFlow 2.21 with NumPy 2 warns from inside ``fit`` (TF tensors' ``__array__``
# lacks the ``copy`` keyword); that is theirs, not ours, and must not fail the run.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

TRAIN_COUNT = 60000


def digests(images: np.ndarray) -> set[str]:
    return {hashlib.sha256(image.tobytes()).hexdigest() for image in images}


# The split itself.


def test_default_split_holds_out_5000() -> None:
    assert VALIDATION_EXAMPLES == 5000
    assert TrainConfig().validation_examples == 5000
    split = split_training_set(TRAIN_COUNT, VALIDATION_EXAMPLES, seed=1)
    assert len(split.validation) == 5000
    assert len(split.train) == 55000
    assert np.intersect1d(split.train, split.validation).size == 0
    # Together they are the whole training file, each image once.
    everything = np.concatenate([split.train, split.validation])
    np.testing.assert_array_equal(np.sort(everything), np.arange(TRAIN_COUNT))


def test_same_seed_same_split_other_seed_other_split() -> None:
    a = split_training_set(TRAIN_COUNT, 5000, seed=1)
    b = split_training_set(TRAIN_COUNT, 5000, seed=1)
    np.testing.assert_array_equal(a.validation, b.validation)
    np.testing.assert_array_equal(a.train, b.train)
    other = split_training_set(TRAIN_COUNT, 5000, seed=2)
    assert np.intersect1d(a.validation, other.validation).size < 1000  # about 5000/12 by chance
    # The recipe the metadata describes: the first N of a permutation seeded with the seed.
    recipe = np.sort(np.random.default_rng(1).permutation(TRAIN_COUNT)[:5000])
    np.testing.assert_array_equal(a.validation, recipe)


def test_train_examples_come_from_outside_the_validation_split() -> None:
    full = split_training_set(TRAIN_COUNT, 5000, seed=3)
    subset = split_training_set(TRAIN_COUNT, 5000, seed=3, train_examples=2000)
    np.testing.assert_array_equal(subset.validation, full.validation)  # N does not move it
    assert len(subset.train) == 2000
    assert np.intersect1d(subset.train, full.validation).size == 0
    # The first 2,000 of the remaining images, in the files' order.
    np.testing.assert_array_equal(subset.train, full.train[:2000])
    # Some of the first 2,000 images of the file are held out, and are skipped.
    assert np.isin(np.arange(2000), full.validation).any()
    assert subset.train[-1] >= 2000


def test_split_is_roughly_balanced(mnist: Mnist) -> None:
    """Not stratified, but 5,000 random images hold every digit at about its share."""
    split = split_training_set(len(mnist.train_labels), 5000, seed=1)
    counts = np.bincount(mnist.train_labels[split.validation], minlength=10)
    assert counts.sum() == 5000
    assert counts.min() > 0.075 * 5000, counts.tolist()
    assert counts.max() < 0.13 * 5000, counts.tolist()


def test_validation_images_are_not_in_the_training_subset_or_the_test_set(mnist: Mnist) -> None:
    split = split_training_set(len(mnist.train_labels), 5000, seed=1, train_examples=20000)
    held_out = digests(mnist.train_images[split.validation])
    assert len(held_out) == 5000
    assert held_out.isdisjoint(digests(mnist.train_images[split.train]))
    assert held_out.isdisjoint(digests(mnist.test_images))


@pytest.mark.parametrize(
    ("validation", "train_examples", "message"),
    [
        (0, None, "between 1 and 59999"),
        (TRAIN_COUNT, None, "between 1 and 59999"),
        (-5, None, "between 1 and 59999"),
        (5000, 55001, "55000 training images are left"),
        (5000, 0, "55000 training images are left"),
    ],
)
def test_impossible_splits_are_refused(
    validation: int, train_examples: int | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        split_training_set(TRAIN_COUNT, validation, seed=1, train_examples=train_examples)


def test_training_refuses_more_examples_than_are_left(mnist: Mnist, tmp_path: Path) -> None:
    config = TrainConfig(model_type="softmax", epochs=1, train_examples=56000, verbose=0)
    with pytest.raises(ValueError, match="55000 training images are left"):
        train(config, mnist, tmp_path / "models")
    assert not (tmp_path / "models").exists()


# Training with it.


@pytest.mark.slow
def test_run_trains_on_the_subset_and_validates_on_the_split(
    softmax_run: TrainResult, softmax_config: TrainConfig, mnist: Mnist
) -> None:
    expected = split_training_set(
        len(mnist.train_labels), 5000, softmax_config.seed, softmax_config.train_examples
    )
    np.testing.assert_array_equal(softmax_run.split.train, expected.train)
    np.testing.assert_array_equal(softmax_run.split.validation, expected.validation)
    meta = softmax_run.metadata
    assert meta.hyperparameters.train_examples == len(softmax_run.split.train) == 2000
    assert meta.validation_examples == len(softmax_run.split.validation) == 5000
    assert meta.hyperparameters.validation_seed == meta.hyperparameters.seed == 3
    assert meta.validation_accuracy is not None
    assert meta.validation_accuracy == softmax_run.validation.accuracy
    assert 0.8 < meta.validation_accuracy <= 1.0
    # Both figures describe the saved model: the validation one on the held-out training images,
    # the test one on the 10,000 test images.
    model = load_artifact(softmax_run.artifact_dir).model
    x_val = model_input(mnist.train_images[softmax_run.split.validation])
    again = evaluate(model, x_val, mnist.train_labels[softmax_run.split.validation])
    assert again.accuracy == meta.validation_accuracy
    assert int(softmax_run.validation.confusion.sum()) == 5000
    assert int(softmax_run.evaluation.confusion.sum()) == 10000
    assert meta.test_accuracy == softmax_run.evaluation.accuracy


@pytest.mark.slow
def test_held_out_images_and_test_set_do_not_change_the_model(
    softmax_run: TrainResult, softmax_config: TrainConfig, mnist: Mnist, tmp_path: Path
) -> None:
    """Tamper with every held-out training image and the whole test set (inverted pixels,
    wrong labels): the trained model is bit for bit the same, so training never read them; only
    the two reported figures change, so they really are measured on those images."""
    held_out = softmax_run.split.validation
    train_images, train_labels = mnist.train_images.copy(), mnist.train_labels.copy()
    train_images[held_out] = 255 - train_images[held_out]
    train_labels[held_out] = (train_labels[held_out] + 1) % 10
    tampered = replace(
        mnist,
        train_images=train_images,
        train_labels=train_labels,
        test_images=255 - mnist.test_images,
        test_labels=(mnist.test_labels + 1) % 10,
    )
    other = train(softmax_config, tampered, tmp_path)
    np.testing.assert_array_equal(other.split.validation, held_out)
    np.testing.assert_array_equal(other.split.train, softmax_run.split.train)
    first = load_artifact(softmax_run.artifact_dir).model.get_weights()
    second = load_artifact(other.artifact_dir).model.get_weights()
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert other.metadata.validation_accuracy is not None
    assert softmax_run.metadata.validation_accuracy is not None
    assert other.metadata.validation_accuracy < softmax_run.metadata.validation_accuracy - 0.3
    assert other.metadata.test_accuracy < softmax_run.metadata.test_accuracy - 0.3
