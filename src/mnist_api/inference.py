"""The model and the batcher that feeds it, off the event loop.

Requests put their 28x28 input in a bounded queue and await a future. One task takes up to
``max_batch`` inputs (waiting at most ``max_delay_ms`` for more once a runner is free), runs one
call of a compiled TensorFlow function on the whole batch in a small thread pool, and resolves the
futures. A full queue answers at once with ``Overloaded`` (503 + Retry-After) instead of letting
latency grow without bound, and every request has a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from mnist_api.errors import InferenceTimeout, Overloaded, Unavailable
from mnist_api.metrics import Metrics

if TYPE_CHECKING:
    from mnist_train.artifact import LoadedArtifact

Probabilities = npt.NDArray[np.float64]
Pixels = npt.NDArray[np.uint8]


class Classifier:
    """A loaded artifact with its forward pass compiled once for any batch size."""

    def __init__(self, loaded: LoadedArtifact) -> None:
        import tensorflow as tf

        self.version = loaded.metadata.version
        self.test_accuracy = loaded.metadata.test_accuracy
        self.path = loaded.path
        self.model = loaded.model
        model = loaded.model
        self._forward = tf.function(
            lambda x: model(x, training=False),
            input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32)],
        )

    @classmethod
    def load(cls, path: Path, *, tf_threads: int | None = None) -> Classifier:
        from mnist_train.artifact import load_artifact
        from mnist_train.runtime import import_tensorflow

        tf = import_tensorflow()
        if tf_threads:
            try:  # possible only before TensorFlow runs its first operation in this process
                tf.config.threading.set_intra_op_parallelism_threads(tf_threads)
                tf.config.threading.set_inter_op_parallelism_threads(tf_threads)
            except RuntimeError:
                pass
        return cls(load_artifact(path))

    @staticmethod
    def _inputs(pixels: Pixels) -> npt.NDArray[np.float32]:
        return (pixels.astype(np.float32) / 255.0)[..., np.newaxis]

    @staticmethod
    def _normalise(raw: npt.NDArray[Any]) -> Probabilities:
        probs: Probabilities = np.asarray(raw, dtype=np.float64)
        normalised: Probabilities = probs / probs.sum(axis=1, keepdims=True)
        return normalised

    def predict_batch(self, pixels: Pixels) -> Probabilities:
        """Probabilities (N x 10) for N 28x28 uint8 inputs: one call of the compiled function."""
        return self._normalise(self._forward(self._inputs(pixels)).numpy())

    def predict_keras(self, pixels: Pixels) -> Probabilities:
        """The original system's way: ``model.predict`` per request (benchmark baseline only)."""
        return self._normalise(self.model.predict(self._inputs(pixels), verbose=0))

    def warm_up(self, max_batch: int) -> None:
        """Trace the function and run every batch size the server will see once: the first
        call at a new size builds kernels for it, which would otherwise land on a request."""
        for size in range(1, max_batch + 1):
            self.predict_batch(np.zeros((size, 28, 28), dtype=np.uint8))


class Predictor(Protocol):
    version: str
    test_accuracy: float | None  # the model's accuracy on the MNIST test set, from its artifact

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def predict(self, pixels: Pixels) -> Probabilities: ...


@dataclass
class _Job:
    pixels: Pixels
    future: asyncio.Future[Probabilities]


class Batcher:
    """Batched inference through ``Classifier.predict_batch`` (the serving path)."""

    def __init__(
        self,
        classifier: Classifier,
        *,
        metrics: Metrics,
        max_batch: int,
        max_delay_ms: float,
        queue_size: int,
        threads: int,
        timeout_s: float,
        retry_after_s: int,
    ) -> None:
        self.version = classifier.version
        self.test_accuracy: float | None = classifier.test_accuracy
        self._classifier = classifier
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
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        if self._queue is not None:
            while not self._queue.empty():
                job = self._queue.get_nowait()
                if not job.future.done():
                    job.future.set_exception(Unavailable("the service is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def predict(self, pixels: Pixels) -> Probabilities:
        if self._queue is None or self._task is None or self._task.done():
            raise Unavailable("the inference worker is not running")
        future: asyncio.Future[Probabilities] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Job(pixels, future))
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

    async def _loop(self) -> None:
        assert self._queue is not None
        assert self._slots is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            await self._slots.acquire()  # while every runner is busy, the queue fills
            self._take(batch)
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
            pixels = np.stack([job.pixels for job in batch])
            started = time.perf_counter()
            probabilities = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._classifier.predict_batch, pixels
            )
            self._metrics.batch_seconds.observe(time.perf_counter() - started)
            self._metrics.batch_size.observe(len(batch))
            for job, probs in zip(batch, probabilities, strict=True):
                if not job.future.done():
                    job.future.set_result(probs)
        except Exception as exc:
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(exc)
        finally:
            self._slots.release()


class PerRequestPredictor:
    """One ``model.predict`` per request, no batching: the original system's way, kept as the
    benchmark's baseline (``MNIST_API_INFERENCE_MODE=predict``)."""

    def __init__(self, classifier: Classifier, *, threads: int) -> None:
        self.version = classifier.version
        self.test_accuracy: float | None = classifier.test_accuracy
        self._classifier = classifier
        self._threads = threads
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(self._threads, thread_name_prefix="predict")

    async def stop(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def predict(self, pixels: Pixels) -> Probabilities:
        probs = await asyncio.get_running_loop().run_in_executor(
            self._executor, self._classifier.predict_keras, pixels[np.newaxis]
        )
        first: Probabilities = probs[0]
        return first


class NoModel:
    """No inference at all (``MNIST_API_INFERENCE_MODE=off``): the benchmark's ceiling, to
    measure what the HTTP, upload and preprocessing path costs by itself. Answers a uniform
    distribution; never used to serve."""

    version = "none"
    test_accuracy: float | None = None

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def predict(self, pixels: Pixels) -> Probabilities:
        return np.full(10, 0.1)
