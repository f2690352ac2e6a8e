"""Prometheus metrics, in a registry of the app's own (several apps can live in one process).

With several workers, ``/metrics`` must describe the instance, not the worker that happens to
answer the scrape: ``mnist-api serve`` then gives the workers a directory in
``PROMETHEUS_MULTIPROC_DIR`` before they start, prometheus_client keeps every worker's values in
memory-mapped files there, and the scrape sums them (counters and histograms over every worker
that ever ran, the queue-depth gauge over the live ones). The metric names are the same either
way."""

from __future__ import annotations

import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONFIDENCE_BUCKETS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999, 1.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        # Chosen by prometheus_client when it was imported: whether values live in files.
        shared = getattr(values.ValueClass, "_multiprocess", False)
        self.directory = os.environ.get(MULTIPROCESS_DIR) if shared else None
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "mnist_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "mnist_http_request_duration_seconds",
            "HTTP request latency by route",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            "mnist_predictions", "Stored predictions by predicted digit", ["digit"], registry=r
        )
        # Drift: how sure the model is of what it is sent, and what it makes of it, per model
        # version (a falling confidence or a rising share of non-digits shows here first).
        self.confidence = Histogram(
            "mnist_prediction_confidence",
            "Calibrated confidence of stored predictions, by model version",
            ["model_version"],
            buckets=CONFIDENCE_BUCKETS,
            registry=r,
        )
        self.verdicts = Counter(
            "mnist_prediction_verdicts",
            "Stored predictions by verdict (digit, uncertain, not_a_digit) and model version",
            ["verdict", "model_version"],
            registry=r,
        )
        self.batch_size = Histogram(
            "mnist_inference_batch_size",
            "Inputs per model call",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=r,
        )
        self.batch_seconds = Histogram(
            "mnist_inference_batch_duration_seconds",
            "Time of one model call",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "mnist_inference_queue_depth",
            "Requests waiting for the model",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.rejected = Counter(
            "mnist_inference_rejected", "Requests refused because the queue was full", registry=r
        )
        self.model_reloads = Counter(
            "mnist_model_reloads",
            "Models loaded while serving: swapped in, or refused",
            ["outcome"],
            registry=r,
        )
        self.store_errors = Counter(
            "mnist_store_errors", "Store operations that failed", ["operation"], registry=r
        )

    def render(self) -> bytes:
        if self.directory is None:
            return generate_latest(self.registry)
        instance = CollectorRegistry()
        multiprocess.MultiProcessCollector(instance, path=self.directory)  # type: ignore[no-untyped-call]
        return generate_latest(instance)

    def close(self) -> None:
        """A worker that stops takes its live gauges out of the instance's sums."""
        if self.directory is not None:
            multiprocess.mark_process_dead(os.getpid(), self.directory)  # type: ignore[no-untyped-call]


class MetricsMiddleware:
    """Counts requests and times them by route template (``/v1/predictions/{prediction_id}``),
    never by raw path, so ids do not explode the label set."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - started)
