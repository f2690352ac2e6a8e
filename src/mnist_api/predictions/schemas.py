"""The JSON bodies of the predictions API: named, typed, with examples, so generated SDKs read
well. Answers are made from the service's records in one place, ``Prediction.of``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from mnist_api.kernel.errors import Problem
from mnist_api.kernel.schemas import Double
from mnist_api.predictions.records import PredictionRecord
from mnist_core.verdicts import NOT_A_DIGIT_LABEL, Thresholds, Verdict

Digit = Annotated[int, Field(ge=0, le=9, description="a digit, 0-9")]
# A history cursor: the last id of a page (a time-based UUID's 16 bytes) in unpadded base64url.
CURSOR_PATTERN = "^[A-Za-z0-9_-]{22}$"
# A review cursor: the last (confidence, id) of a page, 24 bytes in unpadded base64url.
REVIEW_CURSOR_PATTERN = "^[A-Za-z0-9_-]{32}$"

_PROBS = [0.0001, 0.0002, 0.0003, 0.0004, 0.0005, 0.0006, 0.0007, 0.9962, 0.0006, 0.0004]
_IMAGE_EXAMPLE: dict[str, Any] = {
    "content_type": "image/png",
    "width": 280,
    "height": 280,
    "size_bytes": 4211,
    "sha256": "9f2c4cfb5c2a59b0c2a0b6cf6e1a2cfa3b8d8a5d2ff4fd7a6c9c5d0f1e2b3c4d",
}
_PREDICTION_EXAMPLE: dict[str, Any] = {
    "id": "5b6f7a9e-c9a1-11f0-9d2e-0b1c2d3e4f50",
    "digit": 7,
    "confidence": 0.9962,
    "verdict": "digit",
    "probabilities": _PROBS,
    "model_version": "cnn-20261124T090000Z-1a2b3c4d",
    "created_at": "2026-11-24T09:30:00.123Z",
    "image": _IMAGE_EXAMPLE,
    "owner": "3f2a9c1d8e7b",
    "label": None,
    "labeled_not_a_digit": False,
    "labeled_at": None,
}
_UNSURE_EXAMPLE: dict[str, Any] = {
    **_PREDICTION_EXAMPLE,
    "digit": 3,
    "confidence": 0.31,
    "probabilities": [0.05, 0.08, 0.06, 0.31, 0.07, 0.12, 0.09, 0.1, 0.07, 0.05],
    "verdict": "not_a_digit",
}


class ImageInfo(BaseModel):
    """What was uploaded: the original file's type, size and checksum."""

    model_config = ConfigDict(
        from_attributes=True, json_schema_extra={"examples": [_IMAGE_EXAMPLE]}
    )

    content_type: str = Field(description="the image's real type, from its content")
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    size_bytes: int = Field(ge=1)
    sha256: str = Field(pattern="^[0-9a-f]{64}$")


class Prediction(BaseModel):
    """One upload, what the model made of it, and a person's correction if any."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={"examples": [_PREDICTION_EXAMPLE]},
        protected_namespaces=(),
    )

    id: UUID = Field(description="a time-based UUID (version 1)")
    digit: Digit = Field(description="the predicted digit")
    confidence: Double = Field(
        ge=0,
        le=1,
        description="the predicted digit's probability, calibrated: of answers given with a "
        "confidence near 0.9, about nine in ten are right; the score behind `verdict`",
    )
    verdict: Verdict = Field(
        description="what the confidence says: `digit`; `uncertain` (a digit, but the answer "
        "may well be wrong); `not_a_digit` (the upload most likely shows no digit at all). Judged "
        "with the thresholds in force when it is answered (GET /v1/models shows them)"
    )
    probabilities: list[Double] = Field(
        min_length=10, max_length=10, description="probability of each digit 0-9; sums to 1"
    )
    model_version: str = Field(description="version id of the model artifact that answered")
    created_at: datetime = Field(description="when the upload was received (UTC)")
    image: ImageInfo
    owner: str = Field(
        description="the id of the key that made it (`anonymous` without a key)",
        examples=["3f2a9c1d8e7b"],
    )
    label: Digit | None = Field(
        None,
        description="a person's correction; null until given, or when they said it shows no digit",
    )
    labeled_not_a_digit: bool = Field(
        False, description="a person said the upload shows no digit at all"
    )
    labeled_at: datetime | None = Field(None, description="when the label was given (UTC)")

    @classmethod
    def of(cls, record: PredictionRecord, thresholds: Thresholds) -> Prediction:
        """The schema of a stored record, judged with ``thresholds``: the one place where
        records become HTTP answers."""
        fields = {name: getattr(record, name) for name in _RECORD_FIELDS}
        nothing = record.label == NOT_A_DIGIT_LABEL
        fields |= {
            "verdict": thresholds.judge(record.confidence),
            "label": None if nothing else record.label,
            "labeled_not_a_digit": nothing,
        }
        return cls.model_validate(fields, from_attributes=True)


_RECORD_FIELDS = tuple(
    name for name in Prediction.model_fields if name not in ("verdict", "labeled_not_a_digit")
)


class PredictionPage(BaseModel):
    """A page of the history, newest first."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"items": [_PREDICTION_EXAMPLE], "next_cursor": "W29fep7JEfCdLgscLT5PUA"}]
        }
    )

    items: list[Prediction]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null on the last page",
        pattern=CURSOR_PATTERN,
    )


class ReviewPage(BaseModel):
    """A page of the review queue, least confident first."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [_UNSURE_EXAMPLE],
                    "next_cursor": "P9PXCj1wo9dbb3qeyaER8J0uCxwtPk9Q",
                }
            ]
        }
    )

    items: list[Prediction]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null on the last page",
        pattern=REVIEW_CURSOR_PATTERN,
    )


class LabelUpdate(BaseModel):
    """A person's correction of a prediction."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"label": 7}]})

    label: Digit = Field(strict=True)  # a JSON integer: not true, "7" or 7.0


class BatchItem(BaseModel):
    """One file of a batch: a prediction, or the problem that stopped it."""

    filename: str | None
    status: int = Field(description="the status this file would have had on its own")
    prediction: Prediction | None = None
    problem: Problem | None = None


class BatchResult(BaseModel):
    """The results of a batch upload, in the order of the files."""

    items: list[BatchItem]
