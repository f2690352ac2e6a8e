"""Request ids: every request gets one, from the client's ``X-Request-ID`` when it sends a
usable one (a balancer or a calling service may have made it already), or a new one. It comes
back in the ``X-Request-ID`` response header and in problem bodies (``request_id``), and the
log lines written in the request's task carry it, so one id finds a request in the client's
report, the balancer's log and the instance's log.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "X-Request-ID"
_HEADER = HEADER.lower().encode()
# What an id taken from a client may hold: visible ASCII without quotes, spaces or separators
# that would need escaping in a header or a log line.
USABLE = re.compile(r"[A-Za-z0-9._~:/+=@-]{1,128}")

_current: ContextVar[str | None] = ContextVar("request_id", default=None)
access_log = logging.getLogger("mnist_api.access")


def current_request_id() -> str | None:
    """The id of the request being handled in this context, if any."""
    return _current.get()


def _given(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == _HEADER:
            text = value.decode("latin-1")
            return text if USABLE.fullmatch(text) else None
    return None


class RequestIdMiddleware:
    """Outermost of the app's own (inside tracing's server span): gives the request its id
    before anything else can answer it, echoes it, and with ``log_requests`` writes one access
    line per request (method, path, route, status, duration, client, id) in place of
    uvicorn's."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        log_requests: bool,
        on_request_id: Callable[[str], None] | None = None,
    ) -> None:
        self.app = app
        self.log_requests = log_requests
        self.on_request_id = on_request_id  # e.g. to name it on the request's trace span

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _given(scope) or uuid.uuid4().hex
        token = _current.set(request_id)
        if self.on_request_id is not None:
            self.on_request_id(request_id)
        started = time.perf_counter()
        status = 500  # unless a response starts

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.log_requests:
                self._log(scope, status, time.perf_counter() - started)
        # Only on success: an unhandled error's answer is written outside this middleware, by
        # Starlette's last-resort handler, which must still see the id (the request's task
        # ends with it).
        _current.reset(token)

    @staticmethod
    def _log(scope: Scope, status: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", None)
        client = scope.get("client")
        method, path = scope.get("method", ""), scope.get("path", "")
        access_log.info(
            "%s %s %d",
            method,
            path,
            status,
            extra={
                "http": {
                    "method": method,
                    "path": path,
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                    "client": f"{client[0]}:{client[1]}" if client else None,
                }
            },
        )


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on every log record (``record.request_id``, or None)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _current.get()
        return True
