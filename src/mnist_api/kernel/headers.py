"""Browser hardening: headers on every answer.

- ``Content-Security-Policy``: scripts, styles, connections and images from this origin only,
  no inline script anywhere, no plug-ins, no framing, no ``<base>`` tricks. The API documents'
  pages (Swagger UI, ReDoc) keep ``script-src 'self'`` too, but their libraries set styles inline
  and ReDoc searches in a worker made from a blob, so those pages allow inline styles and blob
  workers. An answer that sets its own policy (an uploaded image) keeps it.
- ``X-Content-Type-Options: nosniff``: a body is only ever what its content type says.
- ``Referrer-Policy: no-referrer``: ids in this service's addresses never leak to other sites.
- ``X-Frame-Options: DENY``: for browsers that predate ``frame-ancestors``.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
DOCUMENTS_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
DOCUMENT_PAGES = ("/docs", "/redoc")
FIXED = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = DOCUMENTS_POLICY if scope["path"] in DOCUMENT_PAGES else POLICY

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in FIXED.items():
                    headers[name] = value
                if "content-security-policy" not in headers:
                    headers["Content-Security-Policy"] = policy
            await send(message)

        await self.app(scope, receive, send_with_headers)
