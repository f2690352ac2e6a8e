"""The model the service answers with, loaded once at start-up, and inference through it.

``predict`` returns an ``Inference``: the probabilities and the version of the model that computed
them, from the same call, so that a prediction can never carry another model's version (which
matters once models are swapped while the service runs).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

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


class ServableModel(BatchModel, Protocol):
    """A model the registry can serve (``mnist_core.classifier.Classifier`` is one)."""

    @property
    def test_accuracy(self) -> float: ...

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
    """What the service tells people about its model."""

    version: str
    test_accuracy: float | None


class ModelRegistry:
    def __init__(
        self, settings: Settings, metrics: Metrics, *, loader: Loader = load_classifier
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._loader = loader
        self._model: ServableModel | None = None
        self._engine: Engine = NoModel()

    @property
    def served(self) -> ServedModel:
        if self._model is None:
            return ServedModel(NoModel.version, None)
        return ServedModel(self._model.version, self._model.test_accuracy)

    def _current(self) -> ServableModel:
        assert self._model is not None, "no model loaded"
        return self._model

    def _keras(self) -> KerasModel:
        model = self._current()
        assert isinstance(model, KerasModel), "predict mode needs the TensorFlow runtime"
        return model

    async def open(self) -> None:
        """Load and warm up the model (in a thread: it takes seconds), then start the engine."""
        settings = self._settings
        if settings.inference_mode != "off":
            model = await asyncio.to_thread(self._loader, settings.model_path, settings)
            await asyncio.to_thread(model.warm_up, settings.max_batch)
            self._model = model
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

    async def close(self) -> None:
        await self._engine.stop()

    async def predict(self, pixels: Pixels) -> Inference:
        return await self._engine.predict(pixels)
