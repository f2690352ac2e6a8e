"""Fixtures shared by the training-package tests: one short softmax run per session, and the
checksums MNIST publishes (written out here, not taken from the code under test)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mnist_train.data import Mnist
from mnist_train.train import TrainConfig, TrainResult, train

# SHA-256 of the decompressed content of the four files, as published with the data set.
PUBLISHED_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

SOFTMAX_CONFIG = TrainConfig(model_type="softmax", epochs=2, train_examples=2000, seed=3, verbose=0)


@pytest.fixture(scope="session")
def published_sha256() -> dict[str, str]:
    return dict(PUBLISHED_SHA256)


@pytest.fixture(scope="session")
def softmax_config() -> TrainConfig:
    return SOFTMAX_CONFIG


@pytest.fixture(scope="session")
def softmax_run(mnist: Mnist, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """Softmax regression trained for 2 epochs on the first 2,000 training images (a few s)."""
    root: Path = tmp_path_factory.mktemp("softmax-models")
    return train(SOFTMAX_CONFIG, mnist, root)
