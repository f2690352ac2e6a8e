"""The records of the predictions subject: what the service stores and reads back, who asks,
the history's queries and pages, and prediction ids.

History is ordered newest first by the prediction id, a version-1 (time-based) UUID, and paged by
keyset: a page continues strictly before the last id of the previous one, so uploads that arrive
while a client pages are never skipped or repeated in the pages that follow.
"""

from __future__ import annotations

import os
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# 100-ns ticks between the UUID epoch (1582-10-15) and the Unix epoch.
UUID_EPOCH_OFFSET = 0x01B21DD213814000
_NODE = secrets.randbits(48) | (1 << 40)  # random node id, multicast bit set (RFC 9562)
_NODE_PID = os.getpid()


@dataclass(frozen=True)
class ImageMeta:
    content_type: str
    width: int
    height: int
    size_bytes: int
    sha256: str


@dataclass(frozen=True)
class Owner:
    """Who a prediction belongs to: a key's id (or ``anonymous``), with the rate that bounds how
    fast it can upload (None: no bound but the service's own), which sizes its history's
    partitions in Cassandra."""

    id: str
    rate: float | None = None
    burst: int | None = None


@dataclass(frozen=True)
class Caller:
    """Who asks: an owner, who sees their own predictions, or one who sees everyone's."""

    owner: Owner
    sees_all: bool = False

    @property
    def scope(self) -> str | None:
        """The owner whose predictions this caller may see, or None for all."""
        return None if self.sees_all else self.owner.id


@dataclass(frozen=True)
class PredictionRecord:
    id: uuid.UUID
    digit: int
    confidence: float
    probabilities: tuple[float, ...]
    model_version: str
    created_at: datetime
    image: ImageMeta
    input_pixels: bytes  # the 28x28 uint8 image the model saw, row-major
    owner: str  # the key that made it (its id), or `anonymous`
    label: int | None = None  # a digit, or NOT_A_DIGIT_LABEL
    labeled_at: datetime | None = None
    # Its verdict was not `digit` when it was made: it waits in the review queue until labelled.
    flagged: bool = False


@dataclass(frozen=True)
class StoredImage:
    content_type: str
    data: bytes


@dataclass(frozen=True)
class HistoryQuery:
    limit: int
    owner: str | None = None  # only this owner's predictions; None: everyone's
    before: uuid.UUID | None = None  # keyset cursor: only ids strictly older than this
    digit: int | None = None
    labeled: bool | None = None


@dataclass(frozen=True)
class LabelledQuery:
    """Labelled predictions to export: labelled in [since, before), of one owner or all."""

    owner: str | None = None
    since: datetime | None = None
    before: datetime | None = None

    def admits(self, record: PredictionRecord) -> bool:
        if record.label is None or record.labeled_at is None:
            return False
        if self.owner is not None and record.owner != self.owner:
            return False
        if self.since is not None and record.labeled_at < self.since:
            return False
        return self.before is None or record.labeled_at < self.before


@dataclass(frozen=True)
class ReviewQuery:
    """A page of one owner's review queue: flagged, unlabelled predictions made since ``since``,
    least confident first, after the keyset cursor (confidence, id) of the previous page."""

    owner: str
    limit: int
    since: datetime
    after: tuple[float, uuid.UUID] | None = None


@dataclass(frozen=True)
class ReviewPage:
    items: list[PredictionRecord]
    next_after: tuple[float, uuid.UUID] | None  # None on the last page


def review_key(record: PredictionRecord) -> tuple[float, str]:
    """The review queue's order: confidence, then id (as text, as both stores sort it)."""
    return (record.confidence, str(record.id))


@dataclass(frozen=True)
class HistoryPage:
    items: list[PredictionRecord]
    next_before: uuid.UUID | None  # None on the last page


def new_id() -> uuid.UUID:
    """A version-1 UUID with a random node id (no MAC address), unique across processes."""
    global _NODE, _NODE_PID
    if os.getpid() != _NODE_PID:  # a forked worker gets a node id of its own
        _NODE, _NODE_PID = secrets.randbits(48) | (1 << 40), os.getpid()
    return uuid.uuid1(node=_NODE)


def id_time(prediction_id: uuid.UUID) -> datetime:
    """The creation time carried in a version-1 UUID, truncated to milliseconds."""
    if prediction_id.version != 1:
        raise ValueError("not a time-based (version 1) UUID")
    micros = (prediction_id.time - UUID_EPOCH_OFFSET) // 10
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def id_ticks(prediction_id: uuid.UUID) -> int:
    """The 100-ns timestamp of a version-1 UUID: the history's sort key."""
    return int(prediction_id.time)
