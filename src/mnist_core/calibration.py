"""Calibrated confidence: temperature scaling (Guo et al., "On Calibration of Modern Neural
Networks", 2017), and the expected calibration error that measures it.

A network's probabilities are softened (T > 1) or sharpened (T < 1) by one number fitted on the
validation split, never on the test set: ``p' = softmax(log p / T)``. The argmax, and so the
accuracy, do not change. Training fits ``T`` and records it in the artifact's metadata; both
runtimes apply it to every answer (``mnist_core.lite`` and ``mnist_core.classifier``).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

Probabilities = npt.NDArray[np.float64]
BINS = 15
SMALLEST = 1e-12  # keeps log(0) finite for a probability rounded to zero
LOG_T_RANGE = (math.log(0.05), math.log(20.0))


def apply_temperature(probabilities: Probabilities, temperature: float) -> Probabilities:
    """``softmax(log p / T)`` row by row; ``T = 1`` returns ``probabilities`` unchanged."""
    if temperature == 1.0:
        return probabilities
    logits = np.log(np.maximum(probabilities, SMALLEST)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    result: Probabilities = scaled / scaled.sum(axis=1, keepdims=True)
    return result


def negative_log_likelihood(probabilities: Probabilities, labels: npt.NDArray[np.integer]) -> float:
    picked = probabilities[np.arange(len(labels)), labels.astype(np.int64)]
    return float(-np.log(np.maximum(picked, SMALLEST)).mean())


def fit_temperature(probabilities: Probabilities, labels: npt.NDArray[np.integer]) -> float:
    """The temperature that minimises the negative log-likelihood of ``labels``: a golden-section
    search over log T in [0.05, 20] (the likelihood is unimodal in T)."""
    low, high = LOG_T_RANGE
    ratio = (math.sqrt(5) - 1) / 2

    def loss(log_t: float) -> float:
        return negative_log_likelihood(apply_temperature(probabilities, math.exp(log_t)), labels)

    a, b = low + (1 - ratio) * (high - low), low + ratio * (high - low)
    loss_a, loss_b = loss(a), loss(b)
    while high - low > 1e-4:
        if loss_a <= loss_b:
            high, b, loss_b = b, a, loss_a
            a = low + (1 - ratio) * (high - low)
            loss_a = loss(a)
        else:
            low, a, loss_a = a, b, loss_b
            b = low + ratio * (high - low)
            loss_b = loss(b)
    return round(math.exp((low + high) / 2), 4)


def expected_calibration_error(
    probabilities: Probabilities, labels: npt.NDArray[np.integer], bins: int = BINS
) -> float:
    """ECE over ``bins`` equal-width confidence bins: the gap between confidence and accuracy in
    each bin, weighted by the share of answers in it (Guo et al.'s definition)."""
    confidence = probabilities.max(axis=1)
    right = probabilities.argmax(axis=1) == labels.astype(np.int64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            error += inside.mean() * abs(
                float(right[inside].mean()) - float(confidence[inside].mean())
            )
    return error
