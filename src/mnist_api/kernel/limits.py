"""Request-body limits enforced while the body is read, per route, so an oversized upload is
refused with 413 before it is buffered: a declared Content-Length over the limit is refused at
once, and a chunked body is cut off as soon as its bytes pass the limit."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mnist_api.kernel.errors import PayloadTooLarge, problem_response

MULTIPART_OVERHEAD = 16 * 1024  # boundaries and part headers around each file
SMALL_BODY = 64 * 1024  # any other route (JSON bodies)


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_upload_bytes: int, max_batch_files: int) -> None:
        self.app = app
        single = max_upload_bytes + MULTIPART_OVERHEAD
        self.limits = {
            "/v1/predictions": single,
            "/upload": single,
            "/v1/predictions/batch": max_batch_files * single,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"].rstrip("/") or "/", SMALL_BODY)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            error = PayloadTooLarge(f"the request body is over the limit of {limit} bytes")
            await problem_response(error.problem(scope["path"]))(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # An HTTPException passes through FastAPI's body parsing unchanged and is
                    # written as problem details by the app's handler.
                    raise HTTPException(413, f"the request body is over the limit of {limit} bytes")
            return message

        await self.app(scope, limited_receive, send)
