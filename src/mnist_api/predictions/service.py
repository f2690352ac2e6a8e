"""The use cases of predictions: recognise an upload, list, fetch, label and delete.

The service works with domain records (``records.PredictionRecord``); the routes make the HTTP
schemas from them. Every use case is asked by a ``Caller``: an upload belongs to the caller's
owner, and the caller sees, labels and deletes only its owner's predictions (all of them if it
may see all); another owner's prediction is answered exactly as one that does not exist, so ids
cannot be probed. Store failures are told apart: an unreachable store is a 503 that tells the
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
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from mnist_api.kernel.database import StoreUnavailableError
from mnist_api.kernel.errors import ApiError, Forbidden, PredictionNotFound, StoreUnavailable
from mnist_api.kernel.metrics import Metrics
from mnist_api.kernel.settings import Settings
from mnist_api.kernel.timing import now_ms
from mnist_api.kernel.tracing import Attributes, Tracing
from mnist_api.models import Inference
from mnist_api.predictions.preprocessing import prepare
from mnist_api.predictions.records import (
    Caller,
    HistoryPage,
    HistoryQuery,
    PredictionRecord,
    ReviewPage,
    ReviewQuery,
    StoredImage,
    id_time,
    new_id,
)
from mnist_api.predictions.repository import PredictionRepository
from mnist_core.imaging import to_png
from mnist_core.verdicts import NOT_A_DIGIT_LABEL, Thresholds

log = logging.getLogger("mnist_api")
T = TypeVar("T")


class Upload(Protocol):
    """An uploaded file, as FastAPI's ``UploadFile`` offers it."""

    filename: str | None

    async def read(self, size: int = -1) -> bytes: ...


class Inferrer(Protocol):
    """What the service needs of the model registry."""

    async def predict(self, pixels: npt.NDArray[np.uint8]) -> Inference: ...

    @property
    def thresholds(self) -> Thresholds: ...


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
        tracing: Tracing | None = None,
    ) -> None:
        self._settings = settings
        self._tracing = tracing or Tracing.off()
        self._images = images  # a few threads for decoding and preprocessing uploads
        self._registry = registry
        self._repository = repository
        self._metrics = metrics

    @property
    def thresholds(self) -> Thresholds:
        """The verdicts' thresholds in force (the settings', else the serving model's)."""
        return self._registry.thresholds

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

    async def predict(self, caller: Caller, upload: Upload) -> PredictionRecord:
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
        tracing = self._tracing
        if tracing.on:
            meta = prepared.meta
            size: Attributes = {"image.type": meta.content_type, "image.width": meta.width}
            size |= {"image.height": meta.height, "image.bytes": meta.size_bytes}
            tracing.record("decode", prepared.started_ns, prepared.decoded_ns, size)
            tracing.record("preprocess", prepared.decoded_ns, prepared.finished_ns)
        inference = await self._registry.predict(prepared.pixels)
        if tracing.on and inference.timing is not None:
            timing = inference.timing
            tracing.record("queue wait", timing.queued_ns, timing.started_ns)
            batch: Attributes = {
                "batch.size": timing.size,
                "model.version": inference.model_version,
            }
            tracing.record("model call", timing.started_ns, timing.finished_ns, batch)
        probabilities = inference.probabilities
        digit = int(np.argmax(probabilities))
        confidence = float(probabilities[digit])
        verdict = self.thresholds.judge(confidence)
        prediction_id = new_id()
        record = PredictionRecord(
            id=prediction_id,
            digit=digit,
            confidence=confidence,
            probabilities=tuple(float(p) for p in probabilities),
            model_version=inference.model_version,  # from the same call as the probabilities
            created_at=id_time(prediction_id),
            image=prepared.meta,
            input_pixels=prepared.pixels.tobytes(),
            owner=caller.owner.id,
            flagged=verdict != "digit",  # a person should look at it: the review queue
        )
        with tracing.span("store write"):
            insert = self._repository.insert(record, prepared.data, caller.owner)
            await self._stored("insert", insert)
        self._metrics.predictions.labels(str(digit)).inc()
        version = record.model_version
        self._metrics.confidence.labels(version).observe(confidence)
        self._metrics.verdicts.labels(verdict, version).inc()
        return record

    async def predict_many(self, caller: Caller, uploads: list[Upload]) -> list[BatchOutcome]:
        """Each file on its own (one bad file does not fail the others), all at once so that
        the batcher runs them through the model together."""

        async def one(upload: Upload) -> BatchOutcome:
            try:
                return BatchOutcome(upload.filename, record=await self.predict(caller, upload))
            except ApiError as exc:
                return BatchOutcome(upload.filename, error=exc)

        return list(await asyncio.gather(*(one(upload) for upload in uploads)))

    async def history(
        self,
        caller: Caller,
        *,
        limit: int,
        before: uuid.UUID | None,
        digit: int | None,
        labeled: bool | None,
        owner: str | None = None,
    ) -> HistoryPage:
        """A page of the caller's history; one who sees all may ask for one owner's."""
        if owner is not None and not caller.sees_all and owner != caller.owner.id:
            raise Forbidden("only an admin key may list the predictions of another owner")
        query = HistoryQuery(
            limit=limit,
            owner=owner if owner is not None else caller.scope,
            before=before,
            digit=digit,
            labeled=labeled,
        )
        return await self._stored("history", self._repository.history(query))

    async def review(
        self,
        caller: Caller,
        *,
        limit: int,
        after: tuple[float, uuid.UUID] | None,
        owner: str | None = None,
    ) -> ReviewPage:
        """A page of the caller's review queue (one who sees all may ask for another owner's):
        flagged predictions of the review window that nobody labelled, least confident first."""
        if owner is not None and not caller.sees_all and owner != caller.owner.id:
            raise Forbidden("only an admin key may review the predictions of another owner")
        since = datetime.now(UTC) - timedelta(days=self._settings.review_days)
        query = ReviewQuery(
            owner=owner if owner is not None else caller.owner.id,
            limit=limit,
            since=since,
            after=after,
        )
        return await self._stored("review", self._repository.review(query))

    async def get(self, caller: Caller, prediction_id: uuid.UUID) -> PredictionRecord:
        call = self._repository.get(prediction_id, caller.scope)
        return _found(await self._stored("get", call), prediction_id)

    async def image(self, caller: Caller, prediction_id: uuid.UUID) -> StoredImage:
        call = self._repository.get_image(prediction_id, caller.scope)
        return _found(await self._stored("get_image", call), prediction_id)

    async def input_png(self, caller: Caller, prediction_id: uuid.UUID) -> bytes:
        record = await self.get(caller, prediction_id)
        pixels = np.frombuffer(record.input_pixels, dtype=np.uint8).reshape(28, 28)
        return await self._in_image_pool(functools.partial(to_png, pixels))

    async def label(
        self, caller: Caller, prediction_id: uuid.UUID, label: int | None
    ) -> PredictionRecord:
        """A digit, or None: a person says the upload shows no digit at all."""
        stored_label = NOT_A_DIGIT_LABEL if label is None else label
        call = self._repository.set_label(prediction_id, stored_label, now_ms(), caller.scope)
        return _found(await self._stored("set_label", call), prediction_id)

    async def delete(self, caller: Caller, prediction_id: uuid.UUID) -> None:
        if not await self._stored("delete", self._repository.delete(prediction_id, caller.scope)):
            raise PredictionNotFound(f"no prediction has the id {prediction_id}")


def _found(value: T | None, prediction_id: uuid.UUID) -> T:
    if value is None:
        raise PredictionNotFound(f"no prediction has the id {prediction_id}")
    return value
