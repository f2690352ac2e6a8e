"""A store that keeps nothing (``MNIST_API_STORE=none``): only for the benchmark's ceiling run,
which measures the HTTP and preprocessing path with storage switched off."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime

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


class NullRepository:
    name = "none"
    location = "nowhere (storage off)"

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    async def insert(self, record: PredictionRecord, image: bytes, owner: Owner) -> None:
        return None

    async def get(self, prediction_id: uuid.UUID, owner: str | None) -> PredictionRecord | None:
        return None

    async def get_image(self, prediction_id: uuid.UUID, owner: str | None) -> StoredImage | None:
        return None

    async def history(self, query: HistoryQuery) -> HistoryPage:
        return HistoryPage([], None)

    async def review(self, query: ReviewQuery) -> ReviewPage:
        return ReviewPage([], None)

    async def set_label(
        self, prediction_id: uuid.UUID, label: int, labeled_at: datetime, owner: str | None
    ) -> PredictionRecord | None:
        return None

    async def delete(self, prediction_id: uuid.UUID, owner: str | None) -> bool:
        return False

    async def labelled(self, query: LabelledQuery) -> AsyncIterator[PredictionRecord]:
        return
        yield
