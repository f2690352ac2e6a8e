"""Tracing: off by default (nothing instrumented); on, the real server sends its spans over
OTLP/HTTP to a receiver here, which decodes them with OpenTelemetry's own protobuf classes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from mnist_api.app import create_app
from mnist_api.kernel.settings import load_settings
from mnist_api.kernel.tracing import Tracing
from tests.fixtures.servers import LiveServer, api_env

OWN_SPANS = ("decode", "preprocess", "queue wait", "model call", "store write")


@dataclass(frozen=True)
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, object]
    service: str


class Receiver:
    """An OTLP/HTTP trace receiver on 127.0.0.1, keeping what it is sent."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.content_types: set[str] = set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.content_types.add(self.headers["Content-Type"])
                if self.path == "/v1/traces":
                    receiver.take(body)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200 if self.path == "/v1/traces" else 404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def take(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attributes: dict[str, object] = {}
                    for attribute in span.attributes:
                        value = attribute.value
                        attributes[attribute.key] = getattr(value, value.WhichOneof("value"))
                    self.spans.append(
                        Span(
                            span.name,
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                            attributes,
                            resource["service.name"],
                        )
                    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    running.thread.start()
    try:
        yield running
    finally:
        running.server.shutdown()
        running.server.server_close()


def test_an_upload_is_traced_over_otlp(
    model_root: Path, tmp_path: Path, golden: dict[int, bytes], receiver: Receiver
) -> None:
    env = api_env(model_root, sqlite_path=str(tmp_path / "p.sqlite3"), otlp_endpoint=receiver.url)
    server = LiveServer(env, tmp_path / "server.log")
    try:
        server.wait_ready()
        created = httpx.post(
            f"{server.url}/v1/predictions",
            files={"file": ("7.png", golden[7])},
            headers={"X-Request-ID": "traced-7"},
            timeout=30,
        )
        assert created.status_code == 201
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    finally:
        code = server.stop()  # the last spans leave as the app stops
    assert code == 0, server.console[-2000:]
    assert receiver.content_types == {"application/x-protobuf"}
    servers = [s for s in receiver.spans if s.name == "POST /v1/predictions"]
    assert len(servers) == 1, [s.name for s in receiver.spans]
    request = servers[0]
    assert request.attributes["mnist.request_id"] == "traced-7"
    assert request.service == "mnist-api"
    children = {s.name: s for s in receiver.spans if s.parent_id == request.span_id}
    assert set(OWN_SPANS) <= set(children), sorted(children)
    assert all(children[name].trace_id == request.trace_id for name in OWN_SPANS)
    assert children["decode"].attributes["image.type"] == "image/png"
    assert int(children["model call"].attributes["batch.size"]) >= 1  # type: ignore[call-overload]
    version = (model_root / "LATEST").read_text().strip()
    assert children["model call"].attributes["model.version"] == version
    # Health checks and scrapes are not traced.
    assert not [s for s in receiver.spans if "healthz" in s.name]


def test_off_by_default(model_root: Path, tmp_path: Path) -> None:
    settings = load_settings(model_path=model_root, auth="off", sqlite_path=tmp_path / "p.db")
    assert settings.otlp_endpoint is None
    app = create_app(settings)
    assert not getattr(app, "_is_instrumented_by_opentelemetry", False)
    off = Tracing.off()
    assert not off.on
    # The off path allocates nothing per call: the same no-op context every time.
    assert off.span("a") is off.span("b")
    off.record("decode", 0, 1)
