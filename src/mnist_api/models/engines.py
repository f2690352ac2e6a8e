"""How inference runs, off the event loop, and what it answers: the probabilities together with
the version of the model that produced them, taken from the same call.

- ``Batcher`` (the serving path): requests put their 28x28 input in a bounded queue and await a
  future. One task takes up to ``max_batch`` inputs (waiting at most ``max_delay_ms`` for more
  once a runner is free), runs one call of the model on the whole batch in a small thread pool,
  and resolves the futures. A full queue answers at once with ``Overloaded`` (503 + Retry-After)
  instead of letting latency grow without bound, and every request has a deadline.
- ``PerRequest``: one ``model.predict`` per request, the original system's way, kept as the
  benchmark's baseline.
- ``NoModel``: no inference at all, the benchmark's ceiling.

Each engine reads its model through a callable at the moment it runs, so a model swapped in
later answers the next batch, and every result names the model that computed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from mnist_api.kernel.errors import InferenceTimeout, Overloaded, Unavailable
from mnist_api.kernel.metrics import Metrics

Probabilities = npt.NDArray[np.float64]
Pixels = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class BatchTiming:
    """When an input joined the queue, and when its batch's model call began and ended
    (``time.time_ns()``), with the batch's size: for tracing."""

    queued_ns: int
    started_ns: int
    finished_ns: int
    size: int


@dataclass(frozen=True)
class Inference:
    """One input's answer: ten probabilities, and the model version that computed them."""

    probabilities: Probabilities
    model_version: str
    timing: BatchTiming | None = None  # from the batcher


class BatchModel(Protocol):
    """What the batcher needs of a model (``mnist_core.lite.LiteClassifier`` and
    ``mnist_core.classifier.Classifier`` are two)."""

    @property
    def version(self) -> str: ...

    def predict_batch(self, pixels: Pixels) -> Probabilities: ...


@runtime_checkable
class KerasModel(BatchModel, Protocol):
    """A model with Keras' own ``predict`` (``Classifier``: the TensorFlow runtime)."""

    def predict_keras(self, pixels: Pixels) -> Probabilities: ...


ModelSource = Callable[[], BatchModel]


class Engine(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def predict(self, pixels: Pixels) -> Inference: ...


async def _shut_down(executor: ThreadPoolExecutor | None) -> None:
    """Wait for the pool's threads without blocking the event loop meanwhile."""
    if executor is not None:
        await asyncio.to_thread(executor.shutdown, wait=True)


@dataclass
class _Job:
    pixels: Pixels
    future: asyncio.Future[Inference]
    queued_ns: int


def _refuse(jobs: list[_Job]) -> None:
    for job in jobs:
        if not job.future.done():
            job.future.set_exception(Unavailable("the service is shutting down"))


class Batcher:
    """Batched inference through ``BatchModel.predict_batch`` (the serving path)."""

    def __init__(
        self,
        model: ModelSource,
        *,
        metrics: Metrics,
        max_batch: int,
        max_delay_ms: float,
        queue_size: int,
        threads: int,
        timeout_s: float,
        retry_after_s: int,
    ) -> None:
        self._model = model
        self._metrics = metrics
        self._max_batch = max_batch
        self._max_delay = max_delay_ms / 1000
        self._queue_size = queue_size
        self._threads = threads
        self._timeout = timeout_s
        self._retry_after = retry_after_s
        self._queue: asyncio.Queue[_Job] | None = None
        self._slots: asyncio.Semaphore | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._queue = asyncio.Queue(self._queue_size)
        self._slots = asyncio.Semaphore(self._threads)
        self._executor = ThreadPoolExecutor(self._threads, thread_name_prefix="inference")
        self._task = asyncio.create_task(self._loop(), name="inference-batcher")

    async def stop(self) -> None:
        """Finish the batches already running, refuse what still waits, free the threads."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        if self._queue is not None:
            _refuse([self._queue.get_nowait() for _ in range(self._queue.qsize())])
        executor, self._executor = self._executor, None
        await _shut_down(executor)

    async def predict(self, pixels: Pixels) -> Inference:
        if self._queue is None or self._task is None or self._task.done():
            raise Unavailable("the inference worker is not running")
        future: asyncio.Future[Inference] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Job(pixels, future, time.time_ns()))
        except asyncio.QueueFull:
            self._metrics.rejected.inc()
            raise Overloaded(
                f"{self._queue_size} requests are waiting for the model; retry shortly",
                retry_after_s=self._retry_after,
            ) from None
        self._metrics.queue_depth.set(self._queue.qsize())
        try:
            return await asyncio.wait_for(future, self._timeout)
        except TimeoutError:
            raise InferenceTimeout(
                f"no answer from the model within {self._timeout:g} s",
                retry_after_s=self._retry_after,
            ) from None

    def _take(self, batch: list[_Job]) -> None:
        assert self._queue is not None
        while len(batch) < self._max_batch and not self._queue.empty():
            batch.append(self._queue.get_nowait())

    async def _fill(self, batch: list[_Job]) -> None:
        """Once a runner is free, add to ``batch`` what waits and what comes within the delay,
        up to the batch limit."""
        assert self._queue is not None
        assert self._slots is not None
        await self._slots.acquire()  # while every runner is busy, the queue fills
        self._take(batch)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._max_delay
        while len(batch) < self._max_batch:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
            self._take(batch)

    async def _loop(self) -> None:
        assert self._queue is not None
        assert self._slots is not None
        while True:
            batch = [await self._queue.get()]
            try:
                await self._fill(batch)
            except asyncio.CancelledError:  # stopped while gathering: refused, as the queue is
                _refuse(batch)
                raise
            self._metrics.queue_depth.set(self._queue.qsize())
            live = [job for job in batch if not job.future.done()]
            if not live:
                self._slots.release()
                continue
            task = asyncio.create_task(self._run(live))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[_Job]) -> None:
        assert self._slots is not None
        try:
            model = self._model()  # one model for the whole batch: its version goes with it
            pixels = np.stack([job.pixels for job in batch])
            started = time.perf_counter()
            started_ns = time.time_ns()
            probabilities = await asyncio.get_running_loop().run_in_executor(
                self._executor, model.predict_batch, pixels
            )
            finished_ns = time.time_ns()
            self._metrics.batch_seconds.observe(time.perf_counter() - started)
            self._metrics.batch_size.observe(len(batch))
            for job, probs in zip(batch, probabilities, strict=True):
                if not job.future.done():
                    timing = BatchTiming(job.queued_ns, started_ns, finished_ns, len(batch))
                    job.future.set_result(Inference(probs, model.version, timing))
        except Exception as exc:
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(exc)
        finally:
            self._slots.release()


class PerRequest:
    """One ``model.predict`` per request, no batching: the original system's way, kept as the
    benchmark's baseline (``MNIST_API_INFERENCE_MODE=predict``)."""

    def __init__(self, model: Callable[[], KerasModel], *, threads: int) -> None:
        self._model = model
        self._threads = threads
        self._executor: ThreadPoolExecutor | None = None
        self._in_flight: set[asyncio.Future[Probabilities]] = set()

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(self._threads, thread_name_prefix="predict")

    async def stop(self) -> None:
        """Let the calls already running finish, then free the threads."""
        executor, self._executor = self._executor, None
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        await _shut_down(executor)

    async def predict(self, pixels: Pixels) -> Inference:
        if self._executor is None:
            raise Unavailable("the inference worker is not running")
        model = self._model()
        future = asyncio.get_running_loop().run_in_executor(
            self._executor, model.predict_keras, pixels[np.newaxis]
        )
        self._in_flight.add(future)
        try:
            probabilities = await future
        finally:
            self._in_flight.discard(future)
        return Inference(probabilities[0], model.version)


class NoModel:
    """No inference at all (``MNIST_API_INFERENCE_MODE=off``): the benchmark's ceiling, to
    measure what the HTTP, upload and preprocessing path costs by itself. Answers a uniform
    distribution; never used to serve."""

    version = "none"

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def predict(self, pixels: Pixels) -> Inference:
        return Inference(np.full(10, 0.1), self.version)
