"""The use cases behind the routes: predict an upload, list, fetch, label and delete."""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import logging
import uuid
from collections.abc import Awaitable
from concurrent.futures import Executor
from datetime import UTC, datetime
from typing import TypeVar

import numpy as np
from fastapi import UploadFile

from mnist_api.errors import (
    ApiError,
    InvalidCursor,
    PredictionNotFound,
    StoreUnavailable,
)
from mnist_api.inference import Predictor
from mnist_api.metrics import Metrics
from mnist_api.preprocessing import prepare
from mnist_api.schemas import BatchItem, ImageInfo, Prediction, PredictionPage
from mnist_api.settings import Settings
from mnist_api.store import (
    HistoryQuery,
    PredictionRecord,
    PredictionStore,
    StoredImage,
    StoreError,
)
from mnist_api.store.base import id_time, new_id
from mnist_train.imaging import to_png

log = logging.getLogger("mnist_api")
T = TypeVar("T")


def encode_cursor(prediction_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(prediction_id.bytes).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> uuid.UUID:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = uuid.UUID(bytes=raw)
    except (binascii.Error, ValueError):
        raise InvalidCursor("the cursor is malformed; use a next_cursor from this API") from None
    if value.version != 1 or encode_cursor(value) != cursor:
        raise InvalidCursor("the cursor is malformed; use a next_cursor from this API")
    return value


def to_schema(record: PredictionRecord) -> Prediction:
    return Prediction(
        id=record.id,
        digit=record.digit,
        confidence=record.confidence,
        probabilities=list(record.probabilities),
        model_version=record.model_version,
        created_at=record.created_at,
        image=ImageInfo(
            content_type=record.image.content_type,
            width=record.image.width,
            height=record.image.height,
            size_bytes=record.image.size_bytes,
            sha256=record.image.sha256,
        ),
        label=record.label,
        labeled_at=record.labeled_at,
    )


class PredictionService:
    def __init__(
        self,
        settings: Settings,
        predictor: Predictor,
        store: PredictionStore,
        metrics: Metrics,
        images: Executor,
    ) -> None:
        self.settings = settings
        self.images = images  # a few threads for decoding and preprocessing uploads
        self.predictor = predictor
        self.store = store
        self.metrics = metrics

    async def _stored(self, operation: str, call: Awaitable[T]) -> T:
        """Await a store call; a store failure becomes a 503 with Retry-After."""
        try:
            return await call
        except StoreError as exc:
            self.metrics.store_errors.labels(operation).inc()
            log.warning("store %s failed: %s", operation, exc)
            nothing = "; nothing was stored" if operation == "insert" else ""
            raise StoreUnavailable(
                f"the prediction store cannot be reached{nothing}",
                retry_after_s=self.settings.retry_after_s,
            ) from exc

    async def predict(self, upload: UploadFile) -> Prediction:
        # Reading one byte over the limit is enough to refuse the file, and bounds the read.
        data = await upload.read(self.settings.max_upload_bytes + 1)
        work = functools.partial(
            prepare,
            data,
            max_bytes=self.settings.max_upload_bytes,
            max_pixels=self.settings.max_image_pixels,
        )
        prepared = await asyncio.get_running_loop().run_in_executor(self.images, work)
        probabilities = await self.predictor.predict(prepared.pixels)
        digit = int(np.argmax(probabilities))
        prediction_id = new_id()
        record = PredictionRecord(
            id=prediction_id,
            digit=digit,
            confidence=float(probabilities[digit]),
            probabilities=tuple(float(p) for p in probabilities),
            model_version=self.predictor.version,
            created_at=id_time(prediction_id),
            image=prepared.meta,
            input_pixels=prepared.pixels.tobytes(),
        )
        await self._stored("insert", self.store.insert(record, prepared.data))
        self.metrics.predictions.labels(str(digit)).inc()
        return to_schema(record)

    async def predict_many(self, uploads: list[UploadFile]) -> list[BatchItem]:
        """Each file on its own (one bad file does not fail the others), all at once so that
        the batcher runs them through the model together."""

        async def one(upload: UploadFile) -> BatchItem:
            try:
                prediction = await self.predict(upload)
            except ApiError as exc:
                return BatchItem(filename=upload.filename, status=exc.status, problem=exc.problem())
            return BatchItem(filename=upload.filename, status=201, prediction=prediction)

        return list(await asyncio.gather(*(one(upload) for upload in uploads)))

    async def history(
        self, *, limit: int, cursor: str | None, digit: int | None, labeled: bool | None
    ) -> PredictionPage:
        query = HistoryQuery(
            limit=limit,
            before=decode_cursor(cursor) if cursor is not None else None,
            digit=digit,
            labeled=labeled,
        )
        page = await self._stored("history", self.store.history(query))
        return PredictionPage(
            items=[to_schema(r) for r in page.items],
            next_cursor=encode_cursor(page.next_before) if page.next_before else None,
        )

    async def record(self, prediction_id: uuid.UUID) -> PredictionRecord:
        return _found(await self._stored("get", self.store.get(prediction_id)), prediction_id)

    async def get(self, prediction_id: uuid.UUID) -> Prediction:
        return to_schema(await self.record(prediction_id))

    async def image(self, prediction_id: uuid.UUID) -> StoredImage:
        image = await self._stored("get_image", self.store.get_image(prediction_id))
        return _found(image, prediction_id)

    async def input_png(self, prediction_id: uuid.UUID) -> bytes:
        record = await self.record(prediction_id)
        pixels = np.frombuffer(record.input_pixels, dtype=np.uint8).reshape(28, 28)
        return to_png(pixels)

    async def label(self, prediction_id: uuid.UUID, label: int) -> Prediction:
        now = datetime.now(UTC)
        labeled_at = now.replace(microsecond=now.microsecond // 1000 * 1000)  # stores keep ms
        call = self.store.set_label(prediction_id, label, labeled_at)
        return to_schema(_found(await self._stored("set_label", call), prediction_id))

    async def delete(self, prediction_id: uuid.UUID) -> None:
        if not await self._stored("delete", self.store.delete(prediction_id)):
            raise PredictionNotFound(f"no prediction has the id {prediction_id}")


def _found(value: T | None, prediction_id: uuid.UUID) -> T:
    if value is None:
        raise PredictionNotFound(f"no prediction has the id {prediction_id}")
    return value
