"""Tracing with OpenTelemetry, exported over OTLP (HTTP) when ``MNIST_API_OTLP_ENDPOINT`` is set,
and off otherwise.

On, each request gets the FastAPI instrumentation's server span (with the request id as
``mnist.request_id``), and an upload gets spans of its own under it: ``decode`` and
``preprocess`` (in the image threads), ``queue wait`` and ``model call`` (in the batcher, with
the batch's size and the model's version) and ``store write``. The work in other threads is
timed there and recorded afterwards with its own start and end, so no context has to cross into
the threads. Spans leave in batches (OpenTelemetry's ``OTEL_BSP_*`` variables tune them) and
the last ones are sent when the app stops.

Off, nothing is imported or instrumented: a span is a shared no-op context manager and a
recorded interval a call that returns at once (``bench/tracing.py`` measures both).
"""

from __future__ import annotations

import contextlib
import os
import socket
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from mnist_api.kernel.settings import Settings

Attributes = dict[str, str | int | float | bool]
_NOTHING: AbstractContextManager[None] = contextlib.nullcontext()
EXCLUDED_URLS = "healthz,readyz,metrics,static"


class Tracing:
    """Spans for one app; ``Tracing.off()`` does nothing at all."""

    def __init__(self, provider: Any | None = None) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("mnist_api") if provider is not None else None

    @classmethod
    def off(cls) -> Tracing:
        return cls()

    @classmethod
    def from_settings(cls, settings: Settings) -> Tracing:
        """Off without an endpoint; else a provider of the app's own, exporting there."""
        if settings.otlp_endpoint is None:
            return cls.off()
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

        from mnist_api import __version__

        resource = Resource.create(
            {
                "service.name": settings.otel_service_name,
                "service.version": __version__,
                "service.instance.id": f"{socket.gethostname()}:{settings.port}:{os.getpid()}",
            }
        )
        provider = TracerProvider(
            resource=resource, sampler=ParentBased(TraceIdRatioBased(settings.trace_sample_ratio))
        )
        endpoint = settings.otlp_endpoint.rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        return cls(provider)

    def instrument(self, app: FastAPI) -> None:
        """The FastAPI instrumentation's server spans on ``app`` (when on)."""
        if self._provider is None:
            return
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=self._provider,
            excluded_urls=EXCLUDED_URLS,
            exclude_spans=["receive", "send"],
        )

    @property
    def on(self) -> bool:
        return self._tracer is not None

    def span(self, name: str) -> AbstractContextManager[Any]:
        """A span around work in this task (a child of the current one)."""
        if self._tracer is None:
            return _NOTHING
        span: AbstractContextManager[Any] = self._tracer.start_as_current_span(name)
        return span

    def record(
        self, name: str, start_ns: int, end_ns: int, attributes: Attributes | None = None
    ) -> None:
        """A span for work already done elsewhere (another thread), from ``time.time_ns()``
        readings taken there, as a child of the current span."""
        if self._tracer is None:
            return
        span = self._tracer.start_span(name, start_time=start_ns, attributes=attributes)
        span.end(end_time=end_ns)

    def tag_request(self, request_id: str) -> None:
        """Name the request's id on the current (server) span."""
        from opentelemetry import trace

        trace.get_current_span().set_attribute("mnist.request_id", request_id)

    def close(self) -> None:
        """Send the spans still buffered, then stop exporting."""
        if self._provider is not None:
            self._provider.shutdown()
