"""The inference engines, with a fake model: no TensorFlow, no files, no server."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from mnist_api.kernel.errors import InferenceTimeout, Overloaded, Unavailable
from mnist_api.kernel.metrics import Metrics
from mnist_api.models.engines import Batcher, Inference, PerRequest
from tests.fixtures.fakes import FakeModel, pixels_for

pytestmark = pytest.mark.asyncio(loop_scope="session")


def batcher(model: object, **overrides: float) -> tuple[Batcher, Metrics]:
    metrics = Metrics()
    settings: dict[str, float] = {
        "max_batch": 8,
        "max_delay_ms": 20.0,
        "queue_size": 64,
        "threads": 1,
        "timeout_s": 5.0,
        "retry_after_s": 2,
    } | overrides
    return (
        Batcher(
            lambda: model,  # type: ignore[arg-type,return-value]
            metrics=metrics,
            max_batch=int(settings["max_batch"]),
            max_delay_ms=settings["max_delay_ms"],
            queue_size=int(settings["queue_size"]),
            threads=int(settings["threads"]),
            timeout_s=settings["timeout_s"],
            retry_after_s=int(settings["retry_after_s"]),
        ),
        metrics,
    )


class TestBatcher:
    async def test_each_input_gets_its_own_answer_and_the_models_version(self) -> None:
        engine, _ = batcher(FakeModel("fake-7"))
        await engine.start()
        try:
            answers = await asyncio.gather(*(engine.predict(pixels_for(d)) for d in range(10)))
        finally:
            await engine.stop()
        for digit, answer in enumerate(answers):
            assert isinstance(answer, Inference)
            assert int(np.argmax(answer.probabilities)) == digit
            assert answer.model_version == "fake-7"

    async def test_concurrent_requests_share_model_calls_within_the_batch_limit(self) -> None:
        model = FakeModel(delay_s=0.02)
        engine, _ = batcher(model, max_batch=8)
        await engine.start()
        try:
            await asyncio.gather(*(engine.predict(pixels_for(d % 10)) for d in range(40)))
        finally:
            await engine.stop()
        assert sum(model.batch_sizes) == 40
        assert max(model.batch_sizes) == 8
        assert len(model.batch_sizes) < 40 / 2, model.batch_sizes

    async def test_a_batch_carries_the_version_of_the_model_that_computed_it(self) -> None:
        """The model read at the start of a batch answers for the whole batch, even if another
        one is put in its place meanwhile."""
        first, second = FakeModel("v1", delay_s=0.2), FakeModel("v2")
        current = [first]
        engine = Batcher(
            lambda: current[0],
            metrics=Metrics(),
            max_batch=4,
            max_delay_ms=0,
            queue_size=16,
            threads=1,
            timeout_s=5,
            retry_after_s=1,
        )
        await engine.start()
        try:
            running = asyncio.ensure_future(engine.predict(pixels_for(1)))
            await asyncio.sleep(0.05)  # the first batch is inside the slow model now
            current[0] = second
            later = await engine.predict(pixels_for(2))
            earlier = await running
        finally:
            await engine.stop()
        assert earlier.model_version == "v1"
        assert later.model_version == "v2"

    async def test_a_full_queue_answers_overloaded_at_once(self) -> None:
        engine, metrics = batcher(FakeModel(delay_s=0.2), queue_size=2, max_batch=1)
        started = time.perf_counter()

        headers = []

        async def timed() -> tuple[str, float]:
            try:
                await engine.predict(pixels_for(1))
            except Overloaded as exc:
                headers.append(exc.headers)
                return "refused", time.perf_counter() - started
            return "answered", time.perf_counter() - started

        await engine.start()
        try:
            outcomes = await asyncio.gather(*(timed() for _ in range(10)))
        finally:
            await engine.stop()
        refused = [seconds for kind, seconds in outcomes if kind == "refused"]
        answered = [seconds for kind, seconds in outcomes if kind == "answered"]
        # One batch runs, the loop holds the next, two wait in the queue: the rest are refused.
        assert len(answered) <= 4
        assert len(refused) >= 6
        assert max(refused) < 0.1 < min(answered)
        assert metrics.rejected._value.get() == len(refused)
        assert headers == [{"Retry-After": "2"}] * len(refused)

    async def test_a_slow_model_answers_timeout(self) -> None:
        engine, _ = batcher(FakeModel(delay_s=0.5), timeout_s=0.1)
        await engine.start()
        try:
            with pytest.raises(InferenceTimeout):
                await engine.predict(pixels_for(3))
        finally:
            await engine.stop()

    async def test_a_model_failure_reaches_every_request_of_its_batch(self) -> None:
        model = FakeModel()
        model.fail_with = RuntimeError("out of memory")
        engine, _ = batcher(model)
        await engine.start()
        try:
            outcomes = await asyncio.gather(
                *(engine.predict(pixels_for(d)) for d in range(3)), return_exceptions=True
            )
        finally:
            await engine.stop()
        assert all(isinstance(o, RuntimeError) for o in outcomes)

    async def test_stop_finishes_running_batches_refuses_the_rest_and_keeps_the_loop_free(
        self,
    ) -> None:
        engine, _ = batcher(FakeModel(delay_s=0.3), max_batch=1, max_delay_ms=0)
        await engine.start()
        running = asyncio.ensure_future(engine.predict(pixels_for(4)))
        await asyncio.sleep(0.05)
        queued = asyncio.ensure_future(engine.predict(pixels_for(5)))
        await asyncio.sleep(0.01)
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.ensure_future(tick())
        await engine.stop()
        ticker.cancel()
        assert int(np.argmax((await running).probabilities)) == 4
        # Taken from the queue, waiting for the runner: refused when the engine stops, not left
        # to its timeout (5 s here).
        assert queued.done()
        with pytest.raises(Unavailable, match="shutting down"):
            await queued
        assert ticks >= 5, "the event loop was blocked while the engine stopped"
        with pytest.raises(Unavailable):
            await engine.predict(pixels_for(6))


class TestPerRequest:
    async def test_answers_with_the_version_and_drains_before_stopping(self) -> None:
        engine = PerRequest(lambda: FakeModel("per-1", delay_s=0.2), threads=1)
        await engine.start()
        running = asyncio.ensure_future(engine.predict(pixels_for(8)))
        await asyncio.sleep(0.05)
        await engine.stop()
        answer = await running
        assert answer.model_version == "per-1"
        assert int(np.argmax(answer.probabilities)) == 8
        with pytest.raises(Unavailable):
            await engine.predict(pixels_for(1))
