"""The model the service answers with, loaded at start-up and swapped while it runs, and
inference through it.

``predict`` returns an ``Inference``: the probabilities and the version of the model that computed
them, from the same call, so that a prediction can never carry another model's version, even
while models are swapped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from mnist_api.kernel.errors import ModelRefused
from mnist_api.kernel.metrics import Metrics
from mnist_api.kernel.settings import Settings
from mnist_api.models.engines import (
    Batcher,
    BatchModel,
    Engine,
    Inference,
    KerasModel,
    NoModel,
    PerRequest,
    Pixels,
)
from mnist_core.artifact import ArtifactMetadata, resolve
from mnist_core.errors import ArtifactError
from mnist_core.verdicts import DEFAULT as DEFAULT_THRESHOLDS
from mnist_core.verdicts import Thresholds

log = logging.getLogger("mnist_api")


class ServableModel(BatchModel, Protocol):
    """A model the registry can serve (``mnist_core.lite.LiteClassifier`` and
    ``mnist_core.classifier.Classifier`` are two)."""

    @property
    def test_accuracy(self) -> float: ...

    @property
    def path(self) -> Path: ...  # the artifact directory it was loaded from

    @property
    def metadata(self) -> ArtifactMetadata | None: ...

    def warm_up(self, max_batch: int) -> None: ...


Loader = Callable[[Path, Settings], ServableModel]  # (artifact path, settings) -> model


def load_classifier(path: Path, settings: Settings) -> ServableModel:
    """The artifact at ``path`` in the configured runtime: LiteRT (``model.tflite``, no
    TensorFlow in the process) or TensorFlow (``model.keras``)."""
    if settings.runtime == "litert":
        from mnist_core.lite import LiteClassifier

        return LiteClassifier.load(path)
    from mnist_core.classifier import Classifier

    return Classifier.load(path, tf_threads=settings.tf_threads)


@dataclass(frozen=True)
class ServedModel:
    """What the service tells people about its model (``NoModel``: version ``none``, nothing
    else)."""

    version: str
    test_accuracy: float | None
    metadata: ArtifactMetadata | None = None
    loaded_at: datetime | None = None


@dataclass(frozen=True)
class Reloaded:
    """What a reload did: ``changed`` when another artifact now serves."""

    changed: bool
    version: str
    previous: str


@dataclass(frozen=True)
class _Serving:
    model: ServableModel
    loaded_at: datetime


class ModelRegistry:
    """The model that answers, and how it changes while the service runs.

    Each worker loads the artifact that ``MNIST_API_MODEL_PATH`` names (itself, or the one its
    ``LATEST`` names) and, every ``MNIST_API_MODEL_POLL_S``, looks at what it names now. A new
    artifact is loaded and warmed up in a thread beside the one serving, then swapped in: the
    batcher reads the model once per batch, so a batch already running finishes on the old one
    and the next runs on the new one. An artifact that fails to load or warm up is refused with
    a log line, once, and the old model goes on serving."""

    def __init__(
        self, settings: Settings, metrics: Metrics, *, loader: Loader = load_classifier
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._loader = loader
        self._serving: _Serving | None = None
        self._engine: Engine = NoModel()
        self._lock = asyncio.Lock()  # one reload at a time
        self._refused: Path | None = None  # the last artifact refused, not tried again by polls
        self._watcher: asyncio.Task[None] | None = None
        self._thresholds: tuple[_Serving | None, Thresholds] | None = None

    @property
    def served(self) -> ServedModel:
        if self._serving is None:
            return ServedModel(NoModel.version, None)
        serving = self._serving
        model = serving.model
        return ServedModel(model.version, model.test_accuracy, model.metadata, serving.loaded_at)

    @property
    def thresholds(self) -> Thresholds:
        """The verdict thresholds in force: the settings', else the serving model's (worked out
        once per model served)."""
        serving = self._serving
        if self._thresholds is not None and self._thresholds[0] is serving:
            return self._thresholds[1]
        metadata = serving.model.metadata if serving is not None else None
        fitted = metadata.thresholds if metadata is not None else DEFAULT_THRESHOLDS
        low = self._settings.not_a_digit_below
        high = self._settings.uncertain_below
        low = fitted.not_a_digit_below if low is None else low
        high = max(fitted.uncertain_below, low) if high is None else high
        thresholds = Thresholds(not_a_digit_below=min(low, high), uncertain_below=high)
        self._thresholds = (serving, thresholds)
        return thresholds

    def _current(self) -> ServableModel:
        assert self._serving is not None, "no model loaded"
        return self._serving.model

    def _keras(self) -> KerasModel:
        model = self._current()
        assert isinstance(model, KerasModel), "predict mode needs the TensorFlow runtime"
        return model

    async def _load(self, path: Path) -> _Serving:
        """Load and warm up the artifact ``path`` names (in threads: it takes a while)."""
        settings = self._settings
        model = await asyncio.to_thread(self._loader, path, settings)
        await asyncio.to_thread(model.warm_up, settings.max_batch)
        return _Serving(model, datetime.now(UTC))

    async def open(self) -> None:
        """Load and warm up the model, then start the engine and the watch on LATEST."""
        settings = self._settings
        if settings.inference_mode != "off":
            self._serving = await self._load(settings.model_path)
        if settings.inference_mode == "batched":
            self._engine = Batcher(
                self._current,
                metrics=self._metrics,
                max_batch=settings.max_batch,
                max_delay_ms=settings.max_delay_ms,
                queue_size=settings.queue_size,
                threads=settings.inference_threads,
                timeout_s=settings.request_timeout_s,
                retry_after_s=settings.retry_after_s,
            )
        elif settings.inference_mode == "predict":
            self._engine = PerRequest(self._keras, threads=settings.inference_threads)
        await self._engine.start()
        if self._serving is not None and settings.model_poll_s > 0:
            self._watcher = asyncio.create_task(self._watch(), name="model-watch")

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        await self._engine.stop()

    async def predict(self, pixels: Pixels) -> Inference:
        return await self._engine.predict(pixels)

    async def reload(self, *, by: str = "request") -> Reloaded:
        """Serve what ``MNIST_API_MODEL_PATH`` names now, if that is another artifact. Raises
        ``ModelRefused`` (and the old model goes on) when it cannot be loaded or warmed up."""
        async with self._lock:
            serving = self._serving
            if serving is None:
                raise ModelRefused("this service runs without a model (MNIST_API_INFERENCE_MODE)")
            try:
                directory = await asyncio.to_thread(resolve, self._settings.model_path)
                if directory == serving.model.path:
                    return Reloaded(False, serving.model.version, serving.model.version)
                fresh = await self._load(directory)
            except Exception as exc:  # whatever breaks the new model must not stop the service
                self._metrics.model_reloads.labels("refused").inc()
                log.warning(
                    "model at %s refused (%s): %s; %s goes on serving",
                    self._settings.model_path, by, exc, serving.model.version,
                )  # fmt: skip
                self._refused = await asyncio.to_thread(_named, self._settings.model_path)
                raise ModelRefused(
                    f"the model that {self._settings.model_path} names cannot be served: {exc}; "
                    f"{serving.model.version} goes on serving"
                ) from exc
            self._serving = fresh  # the next batch runs on it
            self._refused = None
            self._metrics.model_reloads.labels("swapped").inc()
            log.info(
                "model %s now serving (was %s; %s)",
                fresh.model.version, serving.model.version, by,
            )  # fmt: skip
            return Reloaded(True, fresh.model.version, serving.model.version)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._settings.model_poll_s)
            try:
                named = await asyncio.to_thread(_named, self._settings.model_path)
                current = self._serving.model.path if self._serving is not None else None
                if named not in (current, self._refused):
                    await self.reload(by="LATEST changed")
            except ModelRefused:
                pass  # logged; tried again once LATEST names something else
            except Exception:  # the watch must outlive anything one poll meets
                log.exception("watching %s failed", self._settings.model_path)


def _named(path: Path) -> Path | None:
    """The artifact directory ``path`` names now, or None when it names none."""
    try:
        return resolve(path)
    except ArtifactError:
        return None
