"""Nothing blocks the event loop: the app under load never runs a callback (a step of a request,
of the batcher, of the store) for longer than 50 ms. Decoding, preprocessing, inference, PNG
encoding and SQLite all run in their own threads.

The app runs as ``mnist-api serve`` runs it: the objects loaded at start-up frozen out of the
garbage collector (``freeze_loaded_objects``; without that, one full collection over
TensorFlow's objects takes about 250 ms, wherever it happens to start), and the interpreter's
switch interval shortened so that threads finishing work hand the GIL back quickly.

Each callback is timed as asyncio's debug mode times it (around ``Handle._run``), but without
debug mode itself: it records where every handle, future and coroutine was made, some 40,000
more objects under this load, and that bookkeeping, done on the loop, and the garbage
collector's passes over it roughly doubled the longest callback (19 to 37 ms in five runs here,
and 51 and 57 ms on two slow runs of this kind of machine; 9 to 17 ms in seven runs without)."""

from __future__ import annotations

import asyncio
import gc
import inspect
import sys
import time
from asyncio.events import Handle
from pathlib import Path

import httpx
import pytest

from mnist_api.cli import SWITCH_INTERVAL_S, freeze_loaded_objects
from tests.fixtures.apps import asgi_client, running_app

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow]
SLOW_CALLBACK_S = 0.05
UPLOADS = 160


class SlowCallbacks:
    """Times every callback the loop runs and keeps those over the bound, while installed."""

    def __init__(self, bound_s: float) -> None:
        self.bound_s = bound_s
        self.seen: list[str] = []
        self._run = Handle._run

    def __enter__(self) -> SlowCallbacks:
        run, bound_s, seen = self._run, self.bound_s, self.seen

        def timed(handle: Handle) -> None:
            start = time.perf_counter()
            run(handle)
            took = time.perf_counter() - start
            if took > bound_s:
                seen.append(f"{handle!r} took {took * 1000:.0f} ms")

        Handle._run = timed  # type: ignore[method-assign, assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        Handle._run = self._run  # type: ignore[method-assign]


async def round_trip(client: httpx.AsyncClient, golden: dict[int, bytes], i: int) -> None:
    """What a client does with one digit: upload it, see it, label it, list the history."""
    digit = i % 10
    created = await client.post("/v1/predictions", files={"file": (f"{digit}.png", golden[digit])})
    assert created.status_code == 201, created.text
    prediction_id = created.json()["id"]
    seen = await client.get(f"/v1/predictions/{prediction_id}/input.png")
    assert seen.status_code == 200
    labeled = await client.put(f"/v1/predictions/{prediction_id}/label", json={"label": digit})
    assert labeled.status_code == 200
    page = await client.get("/v1/predictions", params={"limit": 20})
    assert page.status_code == 200


async def test_no_callback_runs_longer_than_50_ms_under_load(
    model_root: Path, golden: dict[int, bytes], tmp_path: Path
) -> None:
    slow = SlowCallbacks(SLOW_CALLBACK_S)
    async with (
        running_app(
            model_root, sqlite_path=tmp_path / "loop.sqlite3", on_ready=freeze_loaded_objects
        ) as app,
        asgi_client(app) as client,
    ):
        await client.post("/v1/predictions", files={"file": ("warm.png", golden[1])})
        interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        try:
            with slow:
                await asyncio.gather(*(round_trip(client, golden, i) for i in range(UPLOADS)))
        finally:
            sys.setswitchinterval(interval)
            gc.unfreeze()  # the test session goes on; a served process never does this
    assert slow.seen == []


async def test_no_thread_touches_the_loop_unsafely(
    model_root: Path, golden: dict[int, bytes], tmp_path: Path
) -> None:
    """asyncio's debug mode raises when a thread other than the loop's schedules on it without
    ``call_soon_threadsafe``: every thread's result (images, batcher, store) comes back safely."""
    loop = asyncio.get_running_loop()
    async with (
        running_app(model_root, sqlite_path=tmp_path / "safe.sqlite3") as app,
        asgi_client(app) as client,
    ):
        loop.set_debug(True)
        try:
            await asyncio.gather(*(round_trip(client, golden, i) for i in range(UPLOADS // 4)))
        finally:
            loop.set_debug(False)


async def test_every_dependency_runs_on_the_event_loop(tmp_path: Path) -> None:
    """FastAPI runs a plain ``def`` dependency in its thread pool: one thread hand-off per
    request for what is a lookup in ``request.state``. Every dependency of every route is a
    coroutine function, or a security scheme (whose ``__call__`` is one)."""
    from fastapi.routing import APIRoute, iter_route_contexts
    from fastapi.security.base import SecurityBase

    from mnist_api.app import create_app
    from mnist_api.kernel.settings import load_settings

    settings = load_settings(model_path=tmp_path / "no-model", sqlite_path=tmp_path / "x.db")
    app = create_app(settings)
    sync = set()
    routes = [context.route for context in iter_route_contexts(app.routes)]
    assert sum(isinstance(route, APIRoute) for route in routes) > 10
    for route in routes:
        if not isinstance(route, APIRoute):
            continue
        todo = list(route.dependant.dependencies)
        while todo:
            dependant = todo.pop()
            todo.extend(dependant.dependencies)
            call = dependant.call
            if isinstance(call, SecurityBase):
                call = call.__call__
            if not inspect.iscoroutinefunction(call):
                sync.add(f"{route.path}: {getattr(call, '__name__', call)}")
    assert not sync, sorted(sync)
