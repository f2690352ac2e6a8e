"""The use cases behind the routes: predict an upload, list, fetch, label and delete."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import uuid
from datetime import UTC, datetime

import numpy as np
from fastapi import UploadFile
from starlette.concurrency import run_in_threadpool

from mnist_api.errors import (
    ApiError,
    InvalidCursor,
    PayloadTooLarge,
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
        self, settings: Settings, predictor: Predictor, store: PredictionStore, metrics: Metrics
    ) -> None:
        self.settings = settings
        self.predictor = predictor
        self.store = store
        self.metrics = metrics

    def _store_failed(self, operation: str, exc: StoreError) -> StoreUnavailable:
        self.metrics.store_errors.labels(operation).inc()
        log.warning("store %s failed: %s", operation, exc)
        return StoreUnavailable(
            "the prediction store cannot be reached; nothing was stored",
            retry_after_s=self.settings.retry_after_s,
        )

    async def read_upload(self, upload: UploadFile) -> bytes:
        limit = self.settings.max_upload_bytes
        data = await upload.read(limit + 1)
        if len(data) > limit:
            raise PayloadTooLarge(f"the file is over the limit of {limit} bytes")
        return data

    async def predict(self, upload: UploadFile) -> Prediction:
        data = await self.read_upload(upload)
        prepared = await run_in_threadpool(
            prepare,
            data,
            max_bytes=self.settings.max_upload_bytes,
            max_pixels=self.settings.max_image_pixels,
        )
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
        try:
            await self.store.insert(record, prepared.data)
        except StoreError as exc:
            raise self._store_failed("insert", exc) from exc
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
            before=decode_cursor(cursor) if cursor else None,
            digit=digit,
            labeled=labeled,
        )
        try:
            page = await self.store.history(query)
        except StoreError as exc:
            raise self._store_failed("history", exc) from exc
        return PredictionPage(
            items=[to_schema(r) for r in page.items],
            next_cursor=encode_cursor(page.next_before) if page.next_before else None,
        )

    async def record(self, prediction_id: uuid.UUID) -> PredictionRecord:
        try:
            record = await self.store.get(prediction_id)
        except StoreError as exc:
            raise self._store_failed("get", exc) from exc
        if record is None:
            raise PredictionNotFound(f"no prediction has the id {prediction_id}")
        return record

    async def get(self, prediction_id: uuid.UUID) -> Prediction:
        return to_schema(await self.record(prediction_id))

    async def image(self, prediction_id: uuid.UUID) -> StoredImage:
        try:
            image = await self.store.get_image(prediction_id)
        except StoreError as exc:
            raise self._store_failed("get_image", exc) from exc
        if image is None:
            raise PredictionNotFound(f"no prediction has the id {prediction_id}")
        return image

    async def input_png(self, prediction_id: uuid.UUID) -> bytes:
        record = await self.record(prediction_id)
        pixels = np.frombuffer(record.input_pixels, dtype=np.uint8).reshape(28, 28)
        return to_png(pixels)

    async def label(self, prediction_id: uuid.UUID, label: int) -> Prediction:
        try:
            now = datetime.now(UTC)
            labeled_at = now.replace(microsecond=now.microsecond // 1000 * 1000)
            record = await self.store.set_label(prediction_id, label, labeled_at)
        except StoreError as exc:
            raise self._store_failed("set_label", exc) from exc
        if record is None:
            raise PredictionNotFound(f"no prediction has the id {prediction_id}")
        return to_schema(record)

    async def delete(self, prediction_id: uuid.UUID) -> None:
        try:
            deleted = await self.store.delete(prediction_id)
        except StoreError as exc:
            raise self._store_failed("delete", exc) from exc
        if not deleted:
            raise PredictionNotFound(f"no prediction has the id {prediction_id}")
