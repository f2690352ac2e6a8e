"""``create_app()``: the FastAPI application, wired from its subjects, and its lifespan.

The lifespan opens the resources once (the model registry, which loads and warms the model and
starts the batcher; the database, with the repositories of keys and predictions on it; the rate
limits' buckets; a small pool for image work), yields them as the typed ``State`` that requests
see through one ``Annotated`` dependency each, and closes them in reverse order on shutdown.
Nothing happens at import time, and nothing here tunes the process: that is ``mnist-api
serve``'s business (``cli.serving_app``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TypedDict

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from mnist_api import __version__, keys, models, operations, predictions, web
from mnist_api.kernel.databases import Database, open_database
from mnist_api.kernel.drain import Drain, DrainMiddleware
from mnist_api.kernel.errors import install_handlers
from mnist_api.kernel.headers import SecurityHeadersMiddleware
from mnist_api.kernel.limits import BodyLimitMiddleware
from mnist_api.kernel.metrics import Metrics, MetricsMiddleware
from mnist_api.kernel.ratelimit import TokenBuckets
from mnist_api.kernel.requestid import HEADER as REQUEST_ID
from mnist_api.kernel.requestid import RequestIdMiddleware
from mnist_api.kernel.settings import Settings, load_settings
from mnist_api.kernel.tracing import Tracing
from mnist_api.keys import AuthenticationMiddleware, KeyService, open_key_repository
from mnist_api.models import ModelRegistry
from mnist_api.openapi import DESCRIPTION, TAGS, build_spec, with_servers
from mnist_api.predictions import PredictionService, open_repository

log = logging.getLogger("mnist_api")


class State(TypedDict):
    """What the lifespan yields: each request sees it as ``request.state``, and the
    dependencies (``SettingsDep``, ``MetricsDep``, ``DrainDep``, ``RegistryDep``,
    ``ServiceDep``, ``KeyServiceDep``) hand it out; the authentication middleware uses ``keys``
    too."""

    settings: Settings
    metrics: Metrics
    drain: Drain
    registry: ModelRegistry
    keys: KeyService
    predictions: PredictionService


def _ready_line(settings: Settings, registry: ModelRegistry, store: Database) -> str:
    served = registry.served
    accuracy = served.test_accuracy
    model = served.version + (f" (test accuracy {accuracy:.2%})" if accuracy is not None else "")
    if settings.inference_mode != "batched":
        model += f", inference {settings.inference_mode}"
    auth = "API keys required" if settings.auth == "required" else "authentication off"
    return (
        f"ready on http://{settings.host}:{settings.port}: model {model}, "
        f"store {store.name} ({store.location}), {auth}"
    )


def create_app(
    settings: Settings | None = None,
    *,
    on_ready: Callable[[], None] | None = None,
    drain: Drain | None = None,
) -> FastAPI:
    """The app. ``on_ready`` runs once the resources are open (``mnist-api serve`` tunes the
    process there); the tests build many apps in one process and pass nothing. ``drain``: the
    server's, which it begins on SIGTERM (``kernel.drain``); by default one nothing begins."""
    settings = settings or load_settings()
    metrics = Metrics()
    drain = drain or Drain()

    tracing = Tracing.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[State]:
        async with AsyncExitStack() as stack:
            stack.callback(tracing.close)  # last: the spans of the requests that finished
            stack.callback(metrics.close)
            registry = ModelRegistry(settings, metrics)
            await registry.open()
            stack.push_async_callback(registry.close)
            database = open_database(settings)
            await database.open()
            stack.push_async_callback(database.close)
            key_store = open_key_repository(database)
            await key_store.open()
            store = open_repository(database, settings)
            await store.open()
            stack.push_async_callback(store.close)
            buckets = TokenBuckets(settings.rate_limit_file)
            stack.callback(buckets.close)
            key_service = KeyService(settings, key_store, buckets)
            stack.push_async_callback(key_service.close)
            # Few threads for image work: many would fight the event loop for the GIL.
            images = ThreadPoolExecutor(settings.image_threads, thread_name_prefix="images")
            stack.push_async_callback(asyncio.to_thread, images.shutdown, wait=True)
            service = PredictionService(settings, registry, store, metrics, images, tracing)
            if on_ready is not None:
                on_ready()
            log.info("%s", _ready_line(settings, registry, database))
            yield State(
                settings=settings,
                metrics=metrics,
                drain=drain,
                registry=registry,
                keys=key_service,
                predictions=service,
            )
        log.info("stopped")

    app = FastAPI(
        title="MNIST digit recognition",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        generate_unique_id_function=lambda route: route.name,
        openapi_url=None,  # served by web.routes, with the address it was read from
        docs_url=None,  # served by web.routes from the package's own copies
        redoc_url=None,
    )
    install_handlers(app)
    app.include_router(predictions.router)
    app.include_router(predictions.review_router)
    app.include_router(keys.router)
    app.include_router(models.router)
    app.include_router(predictions.legacy_router)
    app.include_router(operations.router)
    app.include_router(web.router)
    app.mount("/static", StaticFiles(directory=web.STATIC_DIR), name="static")
    # Middleware, innermost first: the body limit, then authentication (before any body is
    # read), CORS (so preflights and refusals carry its headers), the security headers, the
    # drain's Connection: close, metrics, and outermost the request id.
    app.add_middleware(
        BodyLimitMiddleware,
        max_upload_bytes=settings.max_upload_bytes,
        max_batch_files=settings.max_batch_files,
    )
    app.add_middleware(AuthenticationMiddleware)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=False,  # keys travel in headers, never in cookies
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "Accept", REQUEST_ID],
            expose_headers=[
                REQUEST_ID,
                "Location",
                "Retry-After",
                "WWW-Authenticate",
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
            ],
        )
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(DrainMiddleware, drain=drain)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    tracing.instrument(app)
    app.add_middleware(
        RequestIdMiddleware,
        log_requests=settings.log_format == "json",
        on_request_id=tracing.tag_request if tracing.on else None,
    )
    local = settings.public_url or f"http://{settings.host}:{settings.port}"
    optional = settings.auth == "off"
    app.openapi = lambda: with_servers(  # type: ignore[method-assign]
        build_spec(app, optional_auth=optional), local
    )
    return app
