"""``create_app()``: the FastAPI application and its lifespan.

The lifespan loads the model artifact, warms the model up, starts the batcher and opens the store
once, and closes them, in reverse order, on shutdown. Nothing happens at import time.
"""

from __future__ import annotations

import functools
import gc
import logging
import sys
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from mnist_api import __version__
from mnist_api.errors import install_handlers
from mnist_api.inference import Batcher, Classifier, NoModel, PerRequestPredictor, Predictor
from mnist_api.limits import BodyLimitMiddleware
from mnist_api.metrics import Metrics, MetricsMiddleware
from mnist_api.openapi import DESCRIPTION, TAGS, build_spec, with_servers
from mnist_api.routes import health, legacy, predictions, web
from mnist_api.service import PredictionService
from mnist_api.settings import Settings, load_settings
from mnist_api.store import PredictionStore
from mnist_api.store.factory import make_store

log = logging.getLogger("mnist_api")

SWITCH_INTERVAL_S = 0.0005


async def _predictor(settings: Settings, metrics: Metrics) -> Predictor:
    if settings.inference_mode == "off":
        return NoModel()
    classifier = await run_in_threadpool(
        functools.partial(Classifier.load, settings.model_path, tf_threads=settings.tf_threads)
    )
    await run_in_threadpool(classifier.warm_up, settings.max_batch)
    if settings.inference_mode == "predict":
        return PerRequestPredictor(classifier, threads=settings.inference_threads)
    return Batcher(
        classifier,
        metrics=metrics,
        max_batch=settings.max_batch,
        max_delay_ms=settings.max_delay_ms,
        queue_size=settings.queue_size,
        threads=settings.inference_threads,
        timeout_s=settings.request_timeout_s,
        retry_after_s=settings.retry_after_s,
    )


def _ready_line(settings: Settings, predictor: Predictor, store: PredictionStore) -> str:
    accuracy = predictor.test_accuracy
    model = predictor.version + (f" (test accuracy {accuracy:.2%})" if accuracy is not None else "")
    if settings.inference_mode != "batched":
        model += f", inference {settings.inference_mode}"
    return (
        f"ready on http://{settings.host}:{settings.port}: model {model}, "
        f"store {store.name} ({store.location})"
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            predictor = await _predictor(settings, metrics)
            await predictor.start()
            stack.push_async_callback(predictor.stop)
            store = make_store(settings)
            await store.open()
            stack.push_async_callback(store.close)
            # Few threads for image work: many would fight the event loop for the GIL.
            images = ThreadPoolExecutor(settings.image_threads, thread_name_prefix="images")
            stack.callback(images.shutdown)
            app.state.service = PredictionService(settings, predictor, store, metrics, images)
            # Everything loaded so far (TensorFlow, the model) lives as long as the process:
            # keep it out of the garbage collector's full passes, which would stall requests.
            gc.collect()
            gc.freeze()
            # Threads that finish a model call or a database write wait for the event loop's
            # thread to give up the GIL; the default 5 ms switch interval adds up to that to
            # every hand-off, and a request makes several.
            sys.setswitchinterval(SWITCH_INTERVAL_S)
            log.info("%s", _ready_line(settings, predictor, store))
            try:
                yield
            finally:
                app.state.service = None
                log.info("stopped")

    app = FastAPI(
        title="MNIST digit recognition",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        generate_unique_id_function=lambda route: route.name,
        openapi_url=None,  # served by routes.web, with the address it was read from
        docs_url=None,  # served by routes.web from the package's own copies
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.service = None
    install_handlers(app)
    app.include_router(predictions.router)
    app.include_router(legacy.router)
    app.include_router(health.router)
    app.include_router(web.router)
    app.mount("/static", StaticFiles(directory=web.STATIC_DIR), name="static")
    app.add_middleware(
        BodyLimitMiddleware,
        max_upload_bytes=settings.max_upload_bytes,
        max_batch_files=settings.max_batch_files,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["*"],
            expose_headers=["Location", "Retry-After"],
        )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    local = settings.public_url or f"http://{settings.host}:{settings.port}"
    app.openapi = lambda: with_servers(build_spec(app), local)  # type: ignore[method-assign]
    return app
