"""Temperature scaling and the expected calibration error: the arithmetic on known cases, the
fit recovering a temperature that made the labels, and the session's trained model calibrated
on its validation split and served with its temperature."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mnist_core.artifact import LITE_FILE, read_metadata
from mnist_core.calibration import (
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
)
from mnist_core.lite import LiteClassifier, LiteModel
from mnist_train.data import Mnist


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    result: np.ndarray = shifted / shifted.sum(axis=1, keepdims=True)
    return result


def test_temperature_keeps_the_answer_and_moves_the_confidence() -> None:
    p = softmax(np.random.default_rng(0).normal(0, 3, (100, 10)))
    assert apply_temperature(p, 1.0) is p
    for t in (0.5, 2.0):
        scaled = apply_temperature(p, t)
        np.testing.assert_allclose(scaled.sum(axis=1), 1.0)
        np.testing.assert_array_equal(scaled.argmax(axis=1), p.argmax(axis=1))
    assert (apply_temperature(p, 2.0).max(axis=1) <= p.max(axis=1) + 1e-12).all()  # softer
    assert (apply_temperature(p, 0.5).max(axis=1) >= p.max(axis=1) - 1e-12).all()  # sharper
    np.testing.assert_allclose(apply_temperature(p, 1e6), 0.1, atol=1e-4)  # towards uniform


@pytest.mark.parametrize("true_temperature", [0.5, 2.5])
def test_the_fit_finds_the_temperature_that_made_the_labels(true_temperature: float) -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 4, (20_000, 10))
    truth = softmax(logits / true_temperature)
    labels = np.array([rng.choice(10, p=row) for row in truth])
    fitted = fit_temperature(softmax(logits), labels)
    assert fitted == pytest.approx(true_temperature, rel=0.05)
    before = negative_log_likelihood(softmax(logits), labels)
    assert negative_log_likelihood(apply_temperature(softmax(logits), fitted), labels) < before


def test_expected_calibration_error_on_known_cases() -> None:
    sure = np.zeros((10, 10))
    sure[:, 0] = 1.0  # always certain of 0...
    labels = np.array([0] * 8 + [1] * 2)  # ...and right 8 times in 10
    assert expected_calibration_error(sure, labels) == pytest.approx(0.2)
    half = np.full((4, 10), 0.5 / 9)
    half[:, 3] = 0.5  # 50% sure of 3, right half the time: calibrated
    assert expected_calibration_error(half, np.array([3, 3, 1, 2])) == pytest.approx(0.0)


def test_the_trained_model_is_calibrated_and_served_so(model_root: Path, mnist: Mnist) -> None:
    directory, meta = read_metadata(model_root)
    calibration = meta.calibration
    assert calibration is not None
    assert calibration.validation_nll_after <= calibration.validation_nll_before
    assert calibration.test_ece_after < calibration.test_ece_before
    assert calibration.test_ece_after <= 0.01
    pixels = mnist.test_images[:500]
    raw = LiteModel((directory / LITE_FILE).read_bytes()).predict_batch(pixels)
    served = LiteClassifier.load(model_root).predict_batch(pixels)
    np.testing.assert_allclose(served, apply_temperature(raw, calibration.temperature), atol=1e-9)
    ece = expected_calibration_error(served, mnist.test_labels[:500])
    assert ece < expected_calibration_error(raw, mnist.test_labels[:500]) + 0.005
