"""Graceful drain on SIGTERM: the real two-worker server, stopped the way a process manager
stops it while clients keep uploading. Every request sent before the signal is answered, the
new connections of the drain delay are served, then refused; the process exits 0 within its
grace period; every 201 is in the store afterwards, and nothing else is."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from mnist_api.kernel.drain import Drain
from tests.api.test_live_server import wait_for_workers
from tests.fixtures.apps import asgi_client, running_app
from tests.fixtures.servers import LiveServer, api_env

CLIENTS = 16
DELAY_S = 2.0
GRACE_S = 20.0


@dataclass(frozen=True)
class Outcome:
    sent: float  # time.monotonic() when the request was sent
    status: int | None = None  # None: no answer
    prediction_id: str | None = None
    closes: bool = False  # the answer said Connection: close
    error: str | None = None
    refused: bool = False  # the connection itself was refused


def upload_until_refused(
    url: str, files: list[bytes], stop: threading.Event, outcomes: list[Outcome]
) -> None:
    """One client uploading without pause on a keep-alive connection, until the server
    refuses to connect (or the test ends)."""
    with httpx.Client(base_url=url, timeout=30) as client:
        count = 0
        while not stop.is_set():
            data = files[count % len(files)]
            count += 1
            sent = time.monotonic()
            try:
                response = client.post("/v1/predictions", files={"file": ("d.png", data)})
            except httpx.ConnectError as exc:
                outcomes.append(Outcome(sent, error=repr(exc), refused=True))
                return
            except httpx.TransportError as exc:
                outcomes.append(Outcome(sent, error=repr(exc)))
                continue
            created = response.status_code == 201
            outcomes.append(
                Outcome(
                    sent,
                    response.status_code,
                    response.json()["id"] if created else None,
                    response.headers.get("connection", "").lower() == "close",
                )
            )


def readiness_after(url: str, signalled: float, until: float) -> list[tuple[float, int]]:
    """``/readyz`` on a new connection every 50 ms: (seconds after the signal, status)."""
    seen = []
    while time.monotonic() < until:
        try:
            status = httpx.get(f"{url}/readyz", timeout=2).status_code
        except httpx.TransportError:
            status = 0
        seen.append((time.monotonic() - signalled, status))
        time.sleep(0.05)
    return seen


def test_sigterm_drains_two_workers_under_uploads(
    model_root: Path, tmp_path: Path, golden: dict[int, bytes]
) -> None:
    db = tmp_path / "p.sqlite3"
    env = api_env(
        model_root,
        sqlite_path=str(db),
        drain_delay_s=str(DELAY_S),
        grace_period_s=str(GRACE_S),
    )
    server = LiveServer(env, tmp_path / "server.log", workers=2)
    stop = threading.Event()
    outcomes: list[Outcome] = []
    clients = [
        threading.Thread(
            target=upload_until_refused, args=(server.url, list(golden.values()), stop, outcomes)
        )
        for _ in range(CLIENTS)
    ]
    try:
        wait_for_workers(server, 2)
        for client in clients:
            client.start()
        time.sleep(2.0)  # a steady stream
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        readiness = readiness_after(server.url, signalled, signalled + DELAY_S - 0.5)
        code = server.process.wait(GRACE_S + 10)
        exited_after = time.monotonic() - signalled
    finally:
        stop.set()
        for client in clients:
            client.join(60)
        server.stop()
    console = server.console
    assert code == 0, console[-3000:]
    assert exited_after < GRACE_S, exited_after

    before = [o for o in outcomes if o.sent < signalled]
    after = [o for o in outcomes if o.sent >= signalled]
    assert len(before) > 100, len(before)
    # Everything sent before the signal was answered, and created.
    assert [o for o in before if o.status != 201] == [], console[-3000:]
    # The instance said at once that it is going away, and kept serving through the delay.
    assert readiness, "no readiness answer during the delay"
    assert {status for after_s, status in readiness if after_s >= 0.1} == {503}, readiness
    in_delay = [o for o in after if o.sent < signalled + DELAY_S - 0.5]
    assert len(in_delay) >= CLIENTS, len(in_delay)
    assert all(o.status == 201 and o.closes for o in in_delay), in_delay[:5]
    # Then new connections were refused: every client ended that way, and nothing sent after
    # the signal failed otherwise than unanswered on a connection the server never took.
    refused = [o for o in outcomes if o.refused]
    assert len(refused) == CLIENTS, [o for o in after if o.status != 201][:5]
    assert min(o.sent for o in refused) > signalled + DELAY_S - 0.5
    assert {o.status for o in after} <= {201, None}

    # Every 201 is in the store, and nothing that was not acknowledged.
    created = {o.prediction_id for o in outcomes if o.status == 201}
    with sqlite3.connect(db) as connection:
        stored = {row[0] for row in connection.execute("SELECT id FROM predictions")}
    assert stored == created, (len(stored), len(created))


def test_new_connections_are_taken_during_the_delay_then_refused(
    model_root: Path, tmp_path: Path, golden: dict[int, bytes]
) -> None:
    """One worker, idle at the signal: it keeps answering on new connections for the delay,
    then refuses them and exits 0 at once (nothing in flight)."""
    env = api_env(
        model_root,
        sqlite_path=str(tmp_path / "p.sqlite3"),
        drain_delay_s=str(DELAY_S),
        grace_period_s=str(GRACE_S),
    )
    server = LiveServer(env, tmp_path / "server.log")
    try:
        server.wait_ready()
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        answer = httpx.post(
            f"{server.url}/v1/predictions", files={"file": ("7.png", golden[7])}, timeout=10
        )
        assert answer.status_code == 201
        assert answer.headers["connection"] == "close"
        assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 503
        code = server.process.wait(GRACE_S)
        stopped_after = time.monotonic() - signalled
    finally:
        server.stop()
    assert code == 0, server.console[-3000:]
    assert DELAY_S <= stopped_after < DELAY_S + 3, stopped_after
    refused = False
    try:
        httpx.get(f"{server.url}/healthz", timeout=2)
    except httpx.ConnectError:
        refused = True
    assert refused


@pytest.mark.asyncio(loop_scope="session")
class TestDrainingApp:
    """The app's side, in process: readiness and Connection: close follow the drain."""

    async def test_readiness_and_connection_close(
        self, model_root: Path, tmp_path: Path, golden: dict[int, bytes]
    ) -> None:
        drain = Drain()
        async with (
            running_app(model_root, drain=drain, sqlite_path=tmp_path / "p.sqlite3") as app,
            asgi_client(app) as client,
        ):
            ready = await client.get("/readyz")
            assert ready.status_code == 200
            assert "connection" not in ready.headers
            drain.begin()
            draining = await client.get("/readyz")
            assert draining.status_code == 503
            assert draining.json()["status"] == "not ready"
            assert draining.json()["detail"].startswith("shutting down")
            created = await client.post("/v1/predictions", files={"file": ("3.png", golden[3])})
            assert created.status_code == 201
            assert created.headers["connection"] == "close"
