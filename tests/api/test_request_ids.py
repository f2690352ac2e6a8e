"""Request ids: taken from X-Request-ID when usable, made otherwise; echoed in the response,
in problem bodies and in the JSON log lines of the real server."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import httpx
import pytest

from tests.fixtures.apps import running_app
from tests.fixtures.servers import LiveServer, api_env

MADE = re.compile(r"^[0-9a-f]{32}$")


@pytest.mark.asyncio(loop_scope="session")
class TestRequestIds:
    async def test_made_when_absent(self, client: httpx.AsyncClient) -> None:
        first = (await client.get("/healthz")).headers["x-request-id"]
        second = (await client.get("/healthz")).headers["x-request-id"]
        assert MADE.match(first)
        assert MADE.match(second)
        assert first != second

    @pytest.mark.parametrize("given", ["abc-123", "00-4bf92f3577b34da6-00f067aa0ba902b7-01"])
    async def test_a_usable_one_is_kept(self, client: httpx.AsyncClient, given: str) -> None:
        answer = await client.get("/readyz", headers={"X-Request-ID": given})
        assert answer.headers["x-request-id"] == given

    @pytest.mark.parametrize(
        "given", ["two words", "x" * 129, 'quote"d', "", "tab\tbed", "caf\xe9".encode("latin-1")]
    )
    async def test_an_unusable_one_is_replaced(
        self, client: httpx.AsyncClient, given: str | bytes
    ) -> None:
        answer = await client.get("/healthz", headers={"X-Request-ID": given})
        assert MADE.match(answer.headers["x-request-id"])

    async def test_problem_bodies_carry_it(self, client: httpx.AsyncClient) -> None:
        missing = await client.get(
            f"/v1/predictions/{uuid.uuid4()}", headers={"X-Request-ID": "trace-404"}
        )
        assert missing.status_code == 404
        assert missing.json()["request_id"] == "trace-404"
        assert missing.headers["x-request-id"] == "trace-404"
        bad = await client.post(
            "/v1/predictions",
            files={"file": ("x.png", b"not an image")},
            headers={"X-Request-ID": "trace-422"},
        )
        assert bad.status_code == 422
        assert bad.json()["request_id"] == "trace-422"
        # Refused by a middleware before any route: the body limit.
        big = await client.post(
            "/v1/predictions",
            files={"file": ("big.png", b"\0" * (6 * 1024 * 1024))},
            headers={"X-Request-ID": "trace-413"},
        )
        assert big.status_code == 413
        assert big.json()["request_id"] == "trace-413"
        assert big.headers["x-request-id"] == "trace-413"

    async def test_an_unexpected_error_carries_it(self, model_root: Path, tmp_path: Path) -> None:
        async with running_app(model_root, sqlite_path=tmp_path / "p.sqlite3") as app:

            async def broken() -> None:
                raise RuntimeError("a bug")

            app.app.add_api_route("/broken", broken)  # type: ignore[attr-defined]
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                answer = await http.get("/broken", headers={"X-Request-ID": "trace-500"})
        assert answer.status_code == 500
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["request_id"] == "trace-500"
        assert answer.headers["x-request-id"] == "trace-500"


def test_json_logs_of_the_real_server(
    model_root: Path, tmp_path: Path, golden: dict[int, bytes]
) -> None:
    env = api_env(model_root, sqlite_path=str(tmp_path / "p.sqlite3"), log_format="json")
    server = LiveServer(env, tmp_path / "server.log")
    try:
        server.wait_ready()
        created = httpx.post(
            f"{server.url}/v1/predictions",
            files={"file": ("7.png", golden[7])},
            headers={"X-Request-ID": "upload-7"},
            timeout=30,
        )
        refused = httpx.post(
            f"{server.url}/v1/predictions",
            files={"file": ("x.png", b"not an image")},
            headers={"X-Request-ID": "upload-junk"},
            timeout=30,
        )
    finally:
        code = server.stop()
    assert code == 0
    assert created.status_code == 201
    assert refused.json()["request_id"] == "upload-junk"
    lines = [json.loads(line) for line in server.console.splitlines() if line.strip()]
    assert all({"time", "level", "logger", "process", "message"} <= set(e) for e in lines)
    assert any(e["message"].startswith("ready on") for e in lines)
    access = {e["request_id"]: e for e in lines if e["logger"] == "mnist_api.access"}
    upload = access["upload-7"]["http"]
    assert upload["method"] == "POST"
    assert upload["route"] == "/v1/predictions"
    assert upload["status"] == 201
    assert upload["duration_ms"] > 0
    assert access["upload-junk"]["http"]["status"] == 422
    # Uvicorn's own access lines are replaced, not doubled.
    assert not [e for e in lines if e["logger"] == "uvicorn.access"]
