"""Accuracy, per-class accuracy and confusion matrix of a model on labelled images."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import keras


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    per_class_accuracy: list[float]
    confusion: npt.NDArray[np.int64]  # rows: true digit, columns: predicted digit

    def report(self) -> str:
        lines = [f"test accuracy: {self.accuracy * 100:.2f}%", "", "per-class accuracy:"]
        lines += [f"  {d}: {acc * 100:6.2f}%" for d, acc in enumerate(self.per_class_accuracy)]
        lines += ["", "confusion matrix (rows: true digit, columns: predicted):"]
        lines.append("       " + "".join(f"{d:>6}" for d in range(10)))
        for d, row in enumerate(self.confusion):
            lines.append(f"  {d:>3}  " + "".join(f"{int(v):>6}" for v in row))
        return "\n".join(lines)


def probabilities_of(
    model: keras.Model, images: npt.NDArray[np.float32]
) -> npt.NDArray[np.float64]:
    probabilities: npt.NDArray[np.float64] = np.asarray(
        model.predict(images, batch_size=1000, verbose=0), dtype=np.float64
    )
    return probabilities


def evaluate(
    model: keras.Model, images: npt.NDArray[np.float32], labels: npt.NDArray[np.uint8]
) -> Evaluation:
    return evaluation_of(probabilities_of(model, images), labels)


def evaluation_of(
    probabilities: npt.NDArray[np.float64], labels: npt.NDArray[np.uint8]
) -> Evaluation:
    predicted = np.argmax(probabilities, axis=1)
    confusion = np.zeros((10, 10), dtype=np.int64)
    np.add.at(confusion, (labels.astype(np.int64), predicted), 1)
    totals = confusion.sum(axis=1)
    per_class = [float(confusion[d, d] / totals[d]) if totals[d] else 0.0 for d in range(10)]
    return Evaluation(float(np.trace(confusion) / confusion.sum()), per_class, confusion)
