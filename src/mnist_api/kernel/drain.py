"""Graceful shutdown on SIGTERM, in the order load balancers and orchestrators expect.

1. At once: ``/readyz`` answers 503, so a balancer's health check takes the instance out of
   rotation; every response carries ``Connection: close``, so keep-alive clients open their
   next connection afresh (through the balancer, to another instance) instead of racing the
   close of an idle one.
2. For ``MNIST_API_DRAIN_DELAY_S``: new connections are still accepted and served, for the
   requests the balancer sends before it notices.
3. Then the listening socket closes (new connections are refused), requests in flight finish,
   the inference queue with them, the store and the model close, and the process exits 0;
   requests still running ``MNIST_API_GRACE_PERIOD_S`` after the signal are cancelled.

SIGINT (Ctrl-C) skips the delay: a person at a terminal wants the server gone now.
"""

from __future__ import annotations

import logging
import signal
import time
from types import FrameType

import uvicorn
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("mnist_api")


class Drain:
    """Whether this process has been asked to stop; readiness and every response read it."""

    def __init__(self) -> None:
        self._draining = False

    @property
    def draining(self) -> bool:
        return self._draining

    def begin(self) -> None:
        self._draining = True


class DrainMiddleware:
    """While the process drains, each response (of a request in flight too) closes its
    connection after it is sent."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start" and self.drain.draining:
                MutableHeaders(scope=message)["Connection"] = "close"
            await send(message)

        await self.app(scope, receive, send_closing)


class DrainingServer(uvicorn.Server):
    """Uvicorn's server, stopping on SIGTERM in the steps above: ``drain`` is the app's,
    ``delay_s`` step 2; step 3's limit is the config's ``timeout_graceful_shutdown``. After a
    SIGTERM it returns normally, so the process exits 0 (uvicorn's own raises the signal again
    once stopped, and the process ends with status 143)."""

    def __init__(self, config: uvicorn.Config, drain: Drain, delay_s: float) -> None:
        super().__init__(config)
        self._drain = drain
        self._delay_s = delay_s
        self._stop_at: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig != signal.SIGTERM:
            super().handle_exit(sig, frame)
        elif not self.should_exit and not self._drain.draining:
            self._drain.begin()
            self._stop_at = time.monotonic() + self._delay_s
            log.info(
                "SIGTERM: not ready; new connections still taken for %g s, then what is in "
                "flight finishes",
                self._delay_s,
            )

    async def on_tick(self, counter: int) -> bool:
        if self._stop_at is not None and time.monotonic() >= self._stop_at:
            self.should_exit = True
        return await super().on_tick(counter)
