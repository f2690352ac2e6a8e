"""Is it a digit? A verdict for every answer, from its calibrated confidence.

The CNN is trained with outlier exposure (``mnist_train.negatives``): on pictures that are not
digits its probabilities spread over the ten digits, so the top one (the confidence, after the
artifact's temperature) is low. Two thresholds cut the confidence into three verdicts:

- ``not_a_digit`` below ``not_a_digit_below``: most likely not a digit at all;
- ``uncertain`` below ``uncertain_below``: a digit, but the answer may well be wrong (with a
  calibrated model, a confidence of 0.9 is right about nine times in ten);
- ``digit`` otherwise.

Training fits ``not_a_digit_below`` on the validation split (never the test set): the confidence
below which ``REFUSED_SHARE`` of the held-out digits fall, so that a known share of real digits
is refused whatever the model's sharpness; ``uncertain_below`` is ``UNCERTAIN_BELOW``, or the
first threshold if that is higher. The service takes both from the artifact unless its settings
say otherwise. Models written before this have neither: ``DEFAULT`` applies.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

Verdict = Literal["digit", "uncertain", "not_a_digit"]
VERDICTS: tuple[Verdict, ...] = ("digit", "uncertain", "not_a_digit")
# A person's label for an upload that shows no digit, where labels are numbers (stores, the
# corrections file, training): the model is taught the uniform answer for it.
NOT_A_DIGIT_LABEL = 10
REFUSED_SHARE = 0.005  # of the validation digits, at the fitted not_a_digit threshold
UNCERTAIN_BELOW = 0.9


class Thresholds(BaseModel):
    """Where the confidence stops meaning a digit, and where it stops meaning a sure one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    not_a_digit_below: float = Field(ge=0, le=1)
    uncertain_below: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.not_a_digit_below > self.uncertain_below:
            raise ValueError(
                f"not_a_digit_below ({self.not_a_digit_below}) is above uncertain_below "
                f"({self.uncertain_below})"
            )
        return self

    def judge(self, confidence: float) -> Verdict:
        if confidence < self.not_a_digit_below:
            return "not_a_digit"
        if confidence < self.uncertain_below:
            return "uncertain"
        return "digit"


# Artifacts without fitted thresholds: the maximum-softmax baseline's usual cut.
DEFAULT = Thresholds(not_a_digit_below=0.5, uncertain_below=UNCERTAIN_BELOW)


def fit_thresholds(
    validation: npt.NDArray[np.float64], refused_share: float = REFUSED_SHARE
) -> Thresholds:
    """Thresholds for a model from its calibrated probabilities (N x 10) on validation digits."""
    confidence = np.asarray(validation, dtype=np.float64).max(axis=1)
    cut = float(np.quantile(confidence, refused_share))
    cut = round(cut, 4)
    return Thresholds(not_a_digit_below=cut, uncertain_below=max(UNCERTAIN_BELOW, cut))


def auroc(positives: npt.ArrayLike, negatives: npt.ArrayLike) -> float:
    """Area under the ROC curve of a score that should be higher on ``positives``: the chance
    that a random positive scores above a random negative (ties count one half)."""
    pos, neg = np.asarray(positives, np.float64), np.asarray(negatives, np.float64)
    if not len(pos) or not len(neg):
        raise ValueError("both sides need at least one score")
    scores = np.concatenate([pos, neg])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    ranks[order] = np.arange(1, len(scores) + 1)
    # Tied scores share their mean rank.
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    ranks = (sums / counts)[inverse]
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))
