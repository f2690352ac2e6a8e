"""``mnist-train compare NEW OLD [--extra FILE]``: whether a candidate model should replace the
one serving, judged on the MNIST test set and on the held-out fifth of the corrections (which no
training run ever sees), by one stated rule:

    the candidate wins when its MNIST test accuracy is at most 0.1 point below the current
    model's and it is right on more of the held-out corrections than the current model (without
    corrections: when its MNIST test accuracy is higher).

A correction that says "not a digit" counts as right when the model's verdict on it is
``not_a_digit`` (its calibrated confidence below the model's own threshold).

The command prints both models' figures per class and the verdict, and exits 0 when the candidate
wins, 1 when it loses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_core.artifact import load_artifact
from mnist_core.calibration import apply_temperature
from mnist_core.corrections import load_corrections
from mnist_core.errors import MnistError
from mnist_core.imaging import model_input
from mnist_core.verdicts import NOT_A_DIGIT_LABEL
from mnist_train.data import Mnist
from mnist_train.evaluate import Evaluation, evaluate, evaluation_of, probabilities_of

MAX_MNIST_DROP = 0.001  # 0.1 point


@dataclass(frozen=True)
class Side:
    version: str
    mnist: Evaluation
    corrections: Evaluation | None  # on the held-out corrections that give a digit
    flagged: int = 0  # held-out "not a digit" corrections the model calls not_a_digit

    @property
    def right(self) -> int:
        """Held-out corrections it answers right: the digit, or not_a_digit."""
        return (_right(self.corrections) if self.corrections is not None else 0) + self.flagged


@dataclass(frozen=True)
class Comparison:
    new: Side
    old: Side
    held_out: int  # corrections judged on
    held_out_counts: list[int]  # per digit
    held_out_not_a_digit: int = 0  # "not a digit" corrections among them

    @property
    def candidate_wins(self) -> bool:
        return not self.reasons_against()

    def reasons_against(self) -> list[str]:
        new, old = self.new, self.old
        reasons = []
        if new.mnist.accuracy < old.mnist.accuracy - MAX_MNIST_DROP:
            reasons.append(
                f"its MNIST test accuracy {new.mnist.accuracy:.2%} is more than 0.1 point below "
                f"{old.mnist.accuracy:.2%}"
            )
        if self.held_out:
            right_new, right_old = new.right, old.right
            if right_new <= right_old:
                reasons.append(
                    f"it is right on {right_new} of the {self.held_out} held-out corrections, "
                    f"not more than the current model ({right_old})"
                )
        elif new.mnist.accuracy <= old.mnist.accuracy:
            reasons.append(
                f"without corrections it must beat {old.mnist.accuracy:.2%} on the MNIST test "
                f"set, and has {new.mnist.accuracy:.2%}"
            )
        return reasons

    def report(self) -> str:
        new, old = self.new, self.old
        lines = [
            f"candidate: {new.version}",
            f"current:   {old.version}",
            "",
            f"{'accuracy':24}{'candidate':>12}{'current':>12}",
            _row("MNIST test", new.mnist.accuracy, old.mnist.accuracy),
        ]
        for digit in range(10):
            a, b = new.mnist.per_class_accuracy[digit], old.mnist.per_class_accuracy[digit]
            lines.append(_row(f"  {digit}", a, b))
        if self.held_out:
            title = f"held-out corrections ({self.held_out})"
            lines.append(_row(title, new.right / self.held_out, old.right / self.held_out))
            for digit in range(10):
                if self.held_out_counts[digit] and new.corrections and old.corrections:
                    a = new.corrections.per_class_accuracy[digit]
                    b = old.corrections.per_class_accuracy[digit]
                    lines.append(_row(f"  {digit} ({self.held_out_counts[digit]})", a, b))
            nothing = self.held_out_not_a_digit
            if nothing:
                title = f"  not a digit ({nothing})"
                lines.append(_row(title, new.flagged / nothing, old.flagged / nothing))
        against = self.reasons_against()
        if against:
            lines.append(f"verdict: the candidate loses: {'; '.join(against)}")
        else:
            why = f"MNIST test {new.mnist.accuracy:.2%} against {old.mnist.accuracy:.2%}"
            if self.held_out:
                why += (
                    f", held-out corrections {new.right} right against {old.right} of "
                    f"{self.held_out}"
                )
            lines.append(f"verdict: the candidate wins ({why})")
        return "\n".join(lines)


def _right(evaluation: Evaluation) -> int:
    return int(np.trace(evaluation.confusion))


def _row(title: str, new: float, old: float) -> str:
    return f"{title:24}{new:>12.2%}{old:>12.2%}"


def compare(new_path: Path, old_path: Path, data: Mnist, extra: Path | None) -> Comparison:
    held_out = None
    if extra is not None:
        _, held_out = load_corrections(extra).split()
        if not len(held_out):
            raise MnistError(f"{extra} has no held-out corrections to judge on")
    x_test = model_input(data.test_images)
    sides = []
    for path in (new_path, old_path):
        artifact = load_artifact(path)
        meta = artifact.metadata
        on_corrections, flagged = None, 0
        if held_out is not None:
            probabilities = probabilities_of(artifact.model, model_input(held_out.images))
            digits = held_out.labels != NOT_A_DIGIT_LABEL
            if digits.any():
                on_corrections = evaluation_of(probabilities[digits], held_out.labels[digits])
            confidence = apply_temperature(probabilities[~digits], meta.temperature).max(axis=1)
            flagged = int((confidence < meta.thresholds.not_a_digit_below).sum())
        mnist = evaluate(artifact.model, x_test, data.test_labels)
        sides.append(Side(meta.version, mnist, on_corrections, flagged))
    counts = [0] * (NOT_A_DIGIT_LABEL + 1)
    if held_out is not None:
        counts = np.bincount(held_out.labels, minlength=NOT_A_DIGIT_LABEL + 1).tolist()
    total = len(held_out) if held_out is not None else 0
    return Comparison(sides[0], sides[1], total, counts[:10], counts[NOT_A_DIGIT_LABEL])
