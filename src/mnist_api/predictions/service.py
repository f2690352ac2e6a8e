"""The use cases of predictions: recognise an upload, list, fetch, label and delete.

The service works with domain records (``records.PredictionRecord``); the routes make the HTTP
schemas from them. Store failures are told apart: an unreachable store is a 503 that tells the
client to retry, any other store error is a fault of the service (500, logged).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from mnist_api.kernel.database import StoreUnavailableError
from mnist_api.kernel.errors import ApiError, PredictionNotFound, StoreUnavailable
from mnist_api.kernel.metrics import Metrics
from mnist_api.kernel.settings import Settings
from mnist_api.models import Inference
from mnist_api.predictions.preprocessing import prepare
from mnist_api.predictions.records import (
    HistoryPage,
    HistoryQuery,
    PredictionRecord,
    StoredImage,
    id_time,
    new_id,
)
from mnist_api.predictions.repository import PredictionRepository
from mnist_core.imaging import to_png

log = logging.getLogger("mnist_api")
T = TypeVar("T")


class Upload(Protocol):
    """An uploaded file, as FastAPI's ``UploadFile`` offers it."""

    filename: str | None

    async def read(self, size: int = -1) -> bytes: ...


class Inferrer(Protocol):
    """What the service needs of the model registry."""

    async def predict(self, pixels: npt.NDArray[np.uint8]) -> Inference: ...


@dataclass(frozen=True)
class BatchOutcome:
    """One file of a batch: its prediction, or the problem that stopped it."""

    filename: str | None
    record: PredictionRecord | None = None
    error: ApiError | None = None


class PredictionService:
    def __init__(
        self,
        settings: Settings,
        registry: Inferrer,
        repository: PredictionRepository,
        metrics: Metrics,
        images: Executor,
    ) -> None:
        self._settings = settings
        self._images = images  # a few threads for decoding and preprocessing uploads
        self._registry = registry
        self._repository = repository
        self._metrics = metrics

    @property
    def max_batch_files(self) -> int:
        return self._settings.max_batch_files

    async def _stored(self, operation: str, call: Awaitable[T]) -> T:
        """Await a store call; an unreachable store becomes a 503 with Retry-After."""
        try:
            return await call
        except StoreUnavailableError as exc:
            self._metrics.store_errors.labels(operation).inc()
            log.warning("store %s failed: %s", operation, exc)
            nothing = "; nothing was stored" if operation == "insert" else ""
            raise StoreUnavailable(
                f"the prediction store cannot be reached{nothing}",
                retry_after_s=self._settings.retry_after_s,
            ) from exc
        except Exception:
            self._metrics.store_errors.labels(operation).inc()
            raise

    async def _in_image_pool(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._images, work)

    async def ping_store(self) -> None:
        await self._repository.ping()

    async def predict(self, upload: Upload) -> PredictionRecord:
        # Reading one byte over the limit is enough to refuse the file, and bounds the read.
        data = await upload.read(self._settings.max_upload_bytes + 1)
        prepared = await self._in_image_pool(
            functools.partial(
                prepare,
                data,
                max_bytes=self._settings.max_upload_bytes,
                max_pixels=self._settings.max_image_pixels,
            )
        )
        inference = await self._registry.predict(prepared.pixels)
        probabilities = inference.probabilities
        digit = int(np.argmax(probabilities))
        prediction_id = new_id()
        record = PredictionRecord(
            id=prediction_id,
            digit=digit,
            confidence=float(probabilities[digit]),
            probabilities=tuple(float(p) for p in probabilities),
            model_version=inference.model_version,  # from the same call as the probabilities
            created_at=id_time(prediction_id),
            image=prepared.meta,
            input_pixels=prepared.pixels.tobytes(),
        )
        await self._stored("insert", self._repository.insert(record, prepared.data))
        self._metrics.predictions.labels(str(digit)).inc()
        return record

    async def predict_many(self, uploads: list[Upload]) -> list[BatchOutcome]:
        """Each file on its own (one bad file does not fail the others), all at once so that
        the batcher runs them through the model together."""

        async def one(upload: Upload) -> BatchOutcome:
            try:
                return BatchOutcome(upload.filename, record=await self.predict(upload))
            except ApiError as exc:
                return BatchOutcome(upload.filename, error=exc)

        return list(await asyncio.gather(*(one(upload) for upload in uploads)))

    async def history(
        self, *, limit: int, before: uuid.UUID | None, digit: int | None, labeled: bool | None
    ) -> HistoryPage:
        query = HistoryQuery(limit=limit, before=before, digit=digit, labeled=labeled)
        return await self._stored("history", self._repository.history(query))

    async def get(self, prediction_id: uuid.UUID) -> PredictionRecord:
        return _found(await self._stored("get", self._repository.get(prediction_id)), prediction_id)

    async def image(self, prediction_id: uuid.UUID) -> StoredImage:
        image = await self._stored("get_image", self._repository.get_image(prediction_id))
        return _found(image, prediction_id)

    async def input_png(self, prediction_id: uuid.UUID) -> bytes:
        record = await self.get(prediction_id)
        pixels = np.frombuffer(record.input_pixels, dtype=np.uint8).reshape(28, 28)
        return await self._in_image_pool(functools.partial(to_png, pixels))

    async def label(self, prediction_id: uuid.UUID, label: int) -> PredictionRecord:
        now = datetime.now(UTC)
        labeled_at = now.replace(microsecond=now.microsecond // 1000 * 1000)  # stores keep ms
        call = self._repository.set_label(prediction_id, label, labeled_at)
        return _found(await self._stored("set_label", call), prediction_id)

    async def delete(self, prediction_id: uuid.UUID) -> None:
        if not await self._stored("delete", self._repository.delete(prediction_id)):
            raise PredictionNotFound(f"no prediction has the id {prediction_id}")


def _found(value: T | None, prediction_id: uuid.UUID) -> T:
    if value is None:
        raise PredictionNotFound(f"no prediction has the id {prediction_id}")
    return value
