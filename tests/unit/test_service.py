"""The prediction service with a fake model and an in-memory store: the use cases and how store
failures reach the client, without TensorFlow or a database."""

from __future__ import annotations

import asyncio
import io
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
import pytest_asyncio
from PIL import Image

from mnist_api.kernel.database import StoreError
from mnist_api.kernel.errors import (
    ApiError,
    Forbidden,
    InvalidImage,
    PredictionNotFound,
    StoreUnavailable,
)
from mnist_api.kernel.metrics import Metrics
from mnist_api.kernel.settings import load_settings
from mnist_api.models import Inference, ModelRegistry
from mnist_api.predictions.records import Caller, Owner
from mnist_api.predictions.service import PredictionService
from mnist_core.verdicts import DEFAULT as DEFAULT_THRESHOLDS
from mnist_core.verdicts import Thresholds
from tests.fixtures.fakes import FakeModel, FakeRepository

pytestmark = pytest.mark.asyncio(loop_scope="session")
T = TypeVar("T")
ME = Caller(Owner("a11ce0000001", rate=10.0, burst=20))
SOMEONE_ELSE = Caller(Owner("b0b000000002", rate=10.0, burst=20))
ADMIN = Caller(Owner("ad0000000003"), sees_all=True)


class Upload:
    def __init__(self, data: bytes, filename: str = "digit.png") -> None:
        self.filename = filename
        self._data = data

    async def read(self, size: int = -1) -> bytes:
        return self._data if size < 0 else self._data[:size]


class WatchedPool(ThreadPoolExecutor):
    """An image pool that counts the work handed to it."""

    def __init__(self) -> None:
        super().__init__(1, thread_name_prefix="images")
        self.jobs = 0
        self.threads: set[str] = set()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        self.jobs += 1

        def run() -> T:
            self.threads.add(threading.current_thread().name)
            return fn(*args, **kwargs)

        return super().submit(run)


class Fixed:
    """A registry stand-in that answers one inference, whatever the input."""

    def __init__(self, inference: Inference) -> None:
        self.inference = inference

    async def predict(self, pixels: object) -> Inference:
        return self.inference

    @property
    def thresholds(self) -> Thresholds:
        return DEFAULT_THRESHOLDS


@pytest_asyncio.fixture(loop_scope="session")
async def parts(tmp_path: Path) -> AsyncIterator[tuple[PredictionService, FakeRepository, Metrics]]:
    settings = load_settings(model_path=tmp_path, sqlite_path=tmp_path / "unused.sqlite3")
    metrics = Metrics()
    registry = ModelRegistry(settings, metrics, loader=lambda path, settings: FakeModel("fake-3"))
    await registry.open()
    repository = FakeRepository()
    pool = WatchedPool()
    try:
        yield PredictionService(settings, registry, repository, metrics, pool), repository, metrics
    finally:
        await registry.close()
        pool.shutdown()


def png(digit_like: bool = True) -> bytes:
    image = Image.new("L", (56, 56), 255)
    if digit_like:
        image.paste(0, (20, 8, 30, 48))  # a dark bar: something like a 1
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class TestPredict:
    async def test_stores_the_answer_with_the_version_that_computed_it(
        self, parts: tuple[PredictionService, FakeRepository, Metrics]
    ) -> None:
        service, repository, _ = parts
        record = await service.predict(ME, Upload(png()))
        assert record.model_version == "fake-3"
        assert record.digit == 0  # FakeModel reads the corner pixel, black in MNIST's format
        assert record.confidence == pytest.approx(0.9)
        assert repository.records[record.id] == record
        assert repository.images[record.id] == png()

    async def test_the_version_comes_from_the_inference_not_from_the_registry(
        self, tmp_path: Path
    ) -> None:
        settings = load_settings(model_path=tmp_path)
        answer = Inference(FakeModel.answer(4), "the-model-that-answered")
        with ThreadPoolExecutor(1) as pool:
            service = PredictionService(settings, Fixed(answer), FakeRepository(), Metrics(), pool)
            record = await service.predict(ME, Upload(png()))
        assert (record.digit, record.model_version) == (4, "the-model-that-answered")

    async def test_image_work_runs_in_the_image_pool(
        self, parts: tuple[PredictionService, FakeRepository, Metrics]
    ) -> None:
        service, _, _ = parts
        pool = service._images
        assert isinstance(pool, WatchedPool)
        record = await service.predict(ME, Upload(png()))
        assert pool.jobs == 1
        seen = await service.input_png(ME, record.id)  # encoding the PNG is image work too
        assert pool.jobs == 2
        assert pool.threads == {"images_0"}
        decoded = np.asarray(Image.open(io.BytesIO(seen)))
        assert decoded.tobytes() == record.input_pixels

    async def test_a_bad_image_stores_nothing(
        self, parts: tuple[PredictionService, FakeRepository, Metrics]
    ) -> None:
        service, repository, _ = parts
        with pytest.raises(InvalidImage):
            await service.predict(ME, Upload(b"not an image"))
        assert repository.calls == []

    async def test_an_unreachable_store_is_a_503_that_says_nothing_was_stored(
        self, parts: tuple[PredictionService, FakeRepository, Metrics]
    ) -> None:
        service, repository, metrics = parts
        repository.unreachable()
        with pytest.raises(StoreUnavailable) as refused:
            await service.predict(ME, Upload(png()))
        assert refused.value.status == 503
        assert refused.value.headers == {"Retry-After": "1"}
        assert "nothing was stored" in refused.value.detail
        assert repository.records == {}
        assert metrics.store_errors.labels("insert")._value.get() == 1

    async def test_any_other_store_error_is_a_fault_not_a_retry(
        self, parts: tuple[PredictionService, FakeRepository, Metrics]
    ) -> None:
        """An integrity error will not go away by retrying: no 503 with Retry-After."""
        service, repository, metrics = parts
        repository.broken()
        with pytest.raises(StoreError) as failed:
            await service.predict(ME, Upload(png()))
        assert not isinstance(failed.value, ApiError)
        assert metrics.store_errors.labels("insert")._value.get() == 1

    async def test_a_batch_answers_each_file_on_its_own(
        self, parts: tuple[PredictionService, FakeRepository, Metrics]
    ) -> None:
        service, repository, _ = parts
        outcomes = await service.predict_many(
            ME, [Upload(png(), "a.png"), Upload(b"junk", "b.txt"), Upload(png(), "c.png")]
        )
        assert [o.filename for o in outcomes] == ["a.png", "b.txt", "c.png"]
        assert outcomes[0].record is not None
        assert outcomes[2].record is not None
        assert isinstance(outcomes[1].error, InvalidImage)
        assert len(repository.records) == 2


class TestReadAndChange:
    async def test_history_label_and_delete(
        self, parts: tuple[PredictionService, FakeRepository, Metrics]
    ) -> None:
        service, _, _ = parts
        made = [await service.predict(ME, Upload(png())) for _ in range(3)]
        page = await service.history(ME, limit=2, before=None, digit=None, labeled=None)
        assert [r.id for r in page.items] == [made[2].id, made[1].id]
        assert page.next_before == made[1].id
        rest = await service.history(ME, limit=2, before=page.next_before, digit=None, labeled=None)
        assert [r.id for r in rest.items] == [made[0].id]
        assert rest.next_before is None
        labeled = await service.label(ME, made[0].id, 7)
        assert labeled.label == 7
        assert labeled.labeled_at is not None
        assert labeled.labeled_at.microsecond % 1000 == 0  # stores keep milliseconds
        only = await service.history(ME, limit=10, before=None, digit=None, labeled=True)
        assert [r.id for r in only.items] == [made[0].id]
        await service.delete(ME, made[0].id)
        with pytest.raises(PredictionNotFound):
            await service.get(ME, made[0].id)
        with pytest.raises(PredictionNotFound):
            await service.delete(ME, made[0].id)

    async def test_unknown_ids_are_not_found(
        self, parts: tuple[PredictionService, FakeRepository, Metrics]
    ) -> None:
        service, _, _ = parts
        unknown = uuid.uuid1()
        for call in (service.get, service.image, service.input_png):
            with pytest.raises(PredictionNotFound):
                await call(ME, unknown)
        with pytest.raises(PredictionNotFound):
            await service.label(ME, unknown, 1)

    async def test_others_see_nothing_and_admins_see_all(
        self, parts: tuple[PredictionService, FakeRepository, Metrics]
    ) -> None:
        service, _, _ = parts
        mine = await service.predict(ME, Upload(png()))
        assert mine.owner == ME.owner.id
        for call in (service.get, service.image, service.input_png, service.delete):
            with pytest.raises(PredictionNotFound):
                await call(SOMEONE_ELSE, mine.id)
        with pytest.raises(PredictionNotFound):
            await service.label(SOMEONE_ELSE, mine.id, 1)
        page = await service.history(SOMEONE_ELSE, limit=5, before=None, digit=None, labeled=None)
        assert page.items == []
        with pytest.raises(Forbidden):
            await service.history(
                SOMEONE_ELSE, limit=5, before=None, digit=None, labeled=None, owner=ME.owner.id
            )
        assert (await service.get(ADMIN, mine.id)).id == mine.id
        everyone = await service.history(ADMIN, limit=5, before=None, digit=None, labeled=None)
        assert mine.id in [r.id for r in everyone.items]
        only_mine = await service.history(
            ADMIN, limit=5, before=None, digit=None, labeled=None, owner=ME.owner.id
        )
        assert {r.owner for r in only_mine.items} == {ME.owner.id}
        await service.delete(ADMIN, mine.id)

    async def test_store_failures_on_reads_are_503(
        self, parts: tuple[PredictionService, FakeRepository, Metrics]
    ) -> None:
        service, repository, _ = parts
        repository.unreachable()
        with pytest.raises(StoreUnavailable):
            await service.history(ME, limit=5, before=None, digit=None, labeled=None)
        await asyncio.sleep(0)
