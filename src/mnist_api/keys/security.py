"""Authentication at the edge, authorization per operation.

``AuthenticationMiddleware`` guards every path of the API (``/v1/...`` and the original
``/upload``): it reads the key (``Authorization: Bearer KEY``, or ``X-API-Key: KEY`` for clients
that cannot set Authorization), turns it into the request's principal and takes a token from the
key's rate limit, all before the request's body is read, so a request without a valid key or
over its limit costs no upload parsing. Anything wrong is answered there: 401 with
``WWW-Authenticate``, 429 with ``Retry-After`` and the ``RateLimit-*`` headers, which every
limited answer carries too.

Each operation then says which scope it needs with one of the dependencies below (``Reader``,
``Predictor``, ...): a principal without it gets 403. The dependencies also declare the two
security schemes, so the OpenAPI document states each operation's requirement, Swagger UI's
Authorize button works, and generated SDKs send the key.
"""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPBearer
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mnist_api.kernel.errors import ApiError, Forbidden, Unauthorized, problem_response
from mnist_api.keys.records import Principal
from mnist_api.keys.records import Scope as KeyScope
from mnist_api.keys.service import MISSING, KeyService

BEARER = "bearerAuth"
API_KEY = "apiKeyAuth"
bearer_scheme = HTTPBearer(
    scheme_name=BEARER,
    bearerFormat="mnist_<id>_<secret>",
    description="An API key: `Authorization: Bearer mnist_...`. Create one with "
    "`mnist-api keys create --name NAME`.",
    auto_error=False,
)
api_key_scheme = APIKeyHeader(
    name="X-API-Key",
    scheme_name=API_KEY,
    description="The same API key, for clients that cannot set Authorization.",
    auto_error=False,
)


def is_protected(path: str) -> bool:
    """Whether a path belongs to the API, which needs a key (when authentication is on)."""
    return path.startswith("/v1/") or path == "/v1" or path.rstrip("/") == "/upload"


def secret_of(headers: Headers) -> str | None:
    """The key a request sent, or None; a malformed Authorization header is a 401."""
    authorization = headers.get("authorization")
    if authorization is not None:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized(
                "the Authorization header must be `Bearer KEY`", invalid=bool(value.strip())
            )
        return value.strip()
    api_key = headers.get("x-api-key")
    return api_key.strip() if api_key is not None and api_key.strip() else None


class AuthenticationMiddleware:
    """Authenticates and rate-limits every request to the API (see the module's text). The
    principal is left in the request's state for the operations' dependencies."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] == "OPTIONS"  # CORS preflights carry no credentials
            or not is_protected(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        keys = cast(KeyService, state["keys"])
        try:
            principal = await keys.authenticate(secret_of(Headers(scope=scope)))
            decision = await keys.limit(principal)
        except ApiError as exc:
            await problem_response(exc.problem(scope["path"]), exc.headers)(scope, receive, send)
            return
        state["principal"] = principal
        if decision is None:
            await self.app(scope, receive, send)
            return
        limits = decision.headers()

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in limits.items():
                    if name not in headers:  # a batch's own, later figures win
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_limits)


def _principal(request: Request) -> Principal:
    principal = getattr(request.state, "principal", None)
    if principal is None:  # only if the middleware was left out
        raise Unauthorized(MISSING)
    return cast(Principal, principal)


def authorize(scope: KeyScope | None) -> object:
    """A dependency that hands a route the principal, once it holds ``scope`` (None: any
    authenticated principal). It declares both security schemes, with the scope as the role
    the operation needs."""
    roles = [str(scope)] if scope is not None else []

    # Defaults, not ``Annotated``: the closure's ``roles`` is not visible where FastAPI
    # evaluates the (postponed) annotations.
    async def dependency(
        request: Request,
        _bearer: object = Security(bearer_scheme, scopes=roles),
        _api_key: object = Security(api_key_scheme, scopes=roles),
    ) -> Principal:
        principal = _principal(request)
        if scope is not None and not principal.allows(scope):
            raise Forbidden(f"this API key lacks the {scope!s} scope")
        return principal

    dependency.__name__ = f"authorize_{scope or 'any'}"
    return Depends(dependency)


async def get_keys(request: Request) -> KeyService:
    return cast(KeyService, request.state.keys)


Authenticated = Annotated[Principal, authorize(None)]
Predictor = Annotated[Principal, authorize(KeyScope.PREDICT)]
Reader = Annotated[Principal, authorize(KeyScope.READ)]
Labeler = Annotated[Principal, authorize(KeyScope.LABEL)]
Deleter = Annotated[Principal, authorize(KeyScope.DELETE)]
Administrator = Annotated[Principal, authorize(KeyScope.ADMIN)]
KeyServiceDep = Annotated[KeyService, Depends(get_keys)]
AUTH_PROBLEMS = (401, 403, 429)
