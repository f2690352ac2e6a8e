"""The ``PredictionRepository`` protocol every store implements. Stores raise the kernel's
``StoreError``, and ``StoreUnavailableError`` when their database cannot be reached.

Reads and changes of one prediction take the owner the caller may see (``None``: any owner): a
prediction of another owner is answered exactly as one that does not exist."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Protocol, runtime_checkable

from mnist_api.predictions.records import (
    HistoryPage,
    HistoryQuery,
    LabelledQuery,
    Owner,
    PredictionRecord,
    ReviewPage,
    ReviewQuery,
    StoredImage,
)


@runtime_checkable
class PredictionRepository(Protocol):
    """Where predictions live. Every method is async and never blocks the event loop; a
    backend that cannot be reached raises ``StoreUnavailableError``."""

    name: str
    location: str  # where the data lives, for people reading the logs

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None: ...

    async def insert(self, record: PredictionRecord, image: bytes, owner: Owner) -> None: ...

    async def get(self, prediction_id: uuid.UUID, owner: str | None) -> PredictionRecord | None: ...

    async def get_image(
        self, prediction_id: uuid.UUID, owner: str | None
    ) -> StoredImage | None: ...

    async def history(self, query: HistoryQuery) -> HistoryPage: ...

    async def review(self, query: ReviewQuery) -> ReviewPage: ...

    async def set_label(
        self, prediction_id: uuid.UUID, label: int, labeled_at: datetime, owner: str | None
    ) -> PredictionRecord | None: ...

    async def delete(self, prediction_id: uuid.UUID, owner: str | None) -> bool: ...

    def labelled(self, query: LabelledQuery) -> AsyncIterator[PredictionRecord]:
        """Every labelled prediction the query admits, in chunks: a whole store never sits in
        memory (``mnist-api export-labels``)."""
        ...
