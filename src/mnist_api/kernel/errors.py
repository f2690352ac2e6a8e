"""Domain errors that carry their HTTP status, and the one handler that writes them as
RFC 9457 problem details (``application/problem+json``)."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

from mnist_api.kernel.requestid import HEADER as REQUEST_ID_HEADER
from mnist_api.kernel.requestid import current_request_id

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("mnist_api")


class ValidationIssue(BaseModel):
    loc: list[str] = Field(description="where: body, query or path, then the field")
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "/problems/invalid-image",
                    "title": "Not a readable image",
                    "status": 422,
                    "detail": "the file is not an image in a format we can read",
                    "instance": "/v1/predictions",
                }
            ]
        }
    )

    type: str = Field(description="a URI reference naming the problem type")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    instance: str | None = None
    errors: list[ValidationIssue] | None = Field(
        None, description="for validation errors: each field that failed"
    )
    request_id: str | None = Field(
        default_factory=current_request_id,
        description="the request's id, as in its X-Request-ID header and the service's logs",
    )


_RESPONSE_DESCRIPTIONS = {
    400: "Malformed request: a cursor this API did not issue, or a body that is not valid "
    "JSON or multipart",
    401: "No API key, or a key that is unknown or revoked; see WWW-Authenticate",
    403: "The key lacks the scope this operation needs",
    404: "No such prediction",
    413: "Request body over the size limit, or an image over the pixel limit",
    415: "Image type not supported",
    422: "Missing field, empty file, not an image, or no digit in it",
    429: "The key's rate limit is spent; see Retry-After and the RateLimit headers",
    503: "Busy, timed out, or storage unreachable; see Retry-After",
}
RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before trying again",
        "schema": {"type": "integer", "minimum": 1},
    }
}
RATE_LIMIT_HEADERS = {
    "RateLimit-Limit": {
        "description": "requests the key may make at once (its bucket's size)",
        "schema": {"type": "integer", "minimum": 1},
    },
    "RateLimit-Remaining": {
        "description": "requests the key may make now",
        "schema": {"type": "integer", "minimum": 0},
    },
    "RateLimit-Reset": {
        "description": "seconds until the bucket is full again",
        "schema": {"type": "integer", "minimum": 0},
    },
}
WWW_AUTHENTICATE = {
    "WWW-Authenticate": {
        "description": "how to authenticate: `Bearer` (an API key)",
        "schema": {"type": "string"},
    }
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: WWW_AUTHENTICATE,
    429: RETRY_AFTER | RATE_LIMIT_HEADERS,
    503: RETRY_AFTER,
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI: error answers with the problem-details schema (and their headers: ``Retry-After``
    on 429 and 503, ``WWW-Authenticate`` on 401)."""
    return {
        status: {"model": Problem, "description": _RESPONSE_DESCRIPTIONS.get(status, "Error")}
        | ({"headers": _HEADERS[status]} if status in _HEADERS else {})
        for status in statuses
    }


class ApiError(Exception):
    """Base of the domain errors. ``slug`` names the problem type (``/problems/{slug}``)."""

    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"
    slug: ClassVar[str] = "internal-error"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}

    def problem(self, instance: str | None = None) -> Problem:
        return Problem(
            type=f"/problems/{self.slug}",
            title=self.title,
            status=self.status,
            detail=self.detail,
            instance=instance,
        )


class BadRequest(ApiError):
    status, title, slug = 400, "Bad request", "bad-request"


class InvalidCursor(BadRequest):
    title, slug = "Invalid cursor", "invalid-cursor"


class Unauthorized(ApiError):
    """No usable API key. The challenge names the scheme, and for a key that was sent but is not
    valid, says so (RFC 6750); the key itself is never repeated."""

    status, title, slug = 401, "API key required", "unauthorized"

    def __init__(self, detail: str, *, invalid: bool = False) -> None:
        challenge = 'Bearer realm="mnist-api"'
        if invalid:
            challenge += ', error="invalid_token"'
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class Forbidden(ApiError):
    status, title, slug = 403, "Not allowed for this key", "forbidden"


class RateLimited(ApiError):
    """The key's token bucket is empty: ``Retry-After`` says when one request fits again."""

    status, title, slug = 429, "Too many requests", "rate-limited"

    def __init__(self, detail: str, *, retry_after_s: int, headers: dict[str, str]) -> None:
        super().__init__(detail, headers={**headers, "Retry-After": str(retry_after_s)})


class NotFound(ApiError):
    status, title, slug = 404, "Not found", "not-found"


class PredictionNotFound(NotFound):
    title, slug = "Prediction not found", "prediction-not-found"


class PayloadTooLarge(ApiError):
    status, title, slug = 413, "Upload too large", "upload-too-large"


class ImageTooLarge(PayloadTooLarge):
    title, slug = "Image has too many pixels", "too-many-pixels"


class UnsupportedImageType(ApiError):
    status, title, slug = 415, "Unsupported image type", "unsupported-image-type"


class Unprocessable(ApiError):
    status, title, slug = 422, "Unprocessable upload", "unprocessable"


class EmptyFile(Unprocessable):
    title, slug = "Empty file", "empty-file"


class InvalidImage(Unprocessable):
    title, slug = "Not a readable image", "invalid-image"


class NoInk(Unprocessable):
    title, slug = "No digit in the image", "no-ink"


class TooManyFiles(Unprocessable):
    title, slug = "Too many files", "too-many-files"


class ModelRefused(ApiError):
    """The artifact that the model path names now cannot be served; the one serving goes on."""

    status, title, slug = 409, "Model refused", "model-refused"


class Unavailable(ApiError):
    """A 503 that tells the client when to come back."""

    status, title, slug = 503, "Service unavailable", "unavailable"

    def __init__(self, detail: str, *, retry_after_s: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_s)})


class Overloaded(Unavailable):
    title, slug = "Service busy", "overloaded"


class InferenceTimeout(Unavailable):
    title, slug = "Inference timed out", "inference-timeout"


class StoreUnavailable(Unavailable):
    title, slug = "Storage unavailable", "store-unavailable"


# What each problem type means, for its page at /problems/{slug}.
DESCRIPTIONS: dict[str, str] = {
    "internal-error": "An unexpected error; it has been logged.",
    "bad-request": "The request is malformed.",
    "unauthorized": "Send an API key: `Authorization: Bearer KEY` or `X-API-Key: KEY`. An "
    "administrator creates keys with `mnist-api keys create`.",
    "forbidden": "The API key lacks the scope this operation needs, or the request asks for "
    "something only an admin key may do.",
    "rate-limited": "The API key made more requests than its rate allows; retry after the "
    "seconds in Retry-After.",
    "invalid-cursor": "The cursor is not one this service issued.",
    "not-found": "There is nothing at this address.",
    "prediction-not-found": "No prediction has this id.",
    "upload-too-large": "The file or request body is over the limit.",
    "too-many-pixels": "Width x height is over the limit.",
    "unsupported-image-type": "Send PNG, JPEG, GIF, BMP, WebP or TIFF.",
    "unprocessable": "The upload cannot be used.",
    "empty-file": "The uploaded file has no bytes.",
    "invalid-image": "The file is not an image, or is corrupt.",
    "no-ink": "The image is blank or uniform.",
    "too-many-files": "The batch holds more files than allowed.",
    "model-refused": "The model that models/LATEST names could not be loaded or warmed up; the "
    "model serving before goes on serving. The detail says why.",
    "unavailable": "Retry after a moment.",
    "overloaded": "The inference queue is full; retry after a moment.",
    "inference-timeout": "The model did not answer in time.",
    "store-unavailable": "The database cannot be reached.",
    "validation-error": "A field is missing or has a wrong value.",
    "method-not-allowed": "This address does not take the method.",
}


def _error_classes(cls: type[ApiError] = ApiError) -> list[type[ApiError]]:
    return [cls, *(sub for child in cls.__subclasses__() for sub in _error_classes(child))]


# slug -> (status, title, description): the domain errors, and the two problems that come from
# the framework (request validation and an unsupported method).
PROBLEM_TYPES: dict[str, tuple[int, str, str]] = {
    cls.slug: (cls.status, cls.title, DESCRIPTIONS[cls.slug]) for cls in _error_classes()
} | {
    "validation-error": (422, "Invalid request", DESCRIPTIONS["validation-error"]),
    "method-not-allowed": (405, "Method not allowed", DESCRIPTIONS["method-not-allowed"]),
}


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        problem.model_dump(mode="json", exclude_none=True),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return problem_response(exc.problem(request.url.path), exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    if any(error.get("type") == "json_invalid" for error in exc.errors()):
        # Not a wrong value but a body that does not parse: a malformed request.
        bad = BadRequest("the request body is not valid JSON")
        return problem_response(bad.problem(request.url.path))
    issues = [
        ValidationIssue(
            loc=[str(part) for part in error.get("loc", ())],
            msg=str(error.get("msg", "")),
            type=str(error.get("type", "")),
        )
        for error in exc.errors()
    ]
    summary = "; ".join(f"{'.'.join(i.loc)}: {i.msg}" for i in issues) or "invalid request"
    _, title, _ = PROBLEM_TYPES["validation-error"]
    problem = Problem(
        type="/problems/validation-error",
        title=title,
        status=422,
        detail=summary,
        instance=request.url.path,
        errors=issues,
    )
    return problem_response(problem)


METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route takes at the request's path, asked of the router itself.
    (Starlette's own 405 names only the first route whose path matches, so ``DELETE`` would be
    missing where ``GET`` is served too.) The static files take GET and HEAD."""
    allowed = []
    for method in METHODS:
        scope = {**request.scope, "method": method}
        for route in request.app.router.routes:
            if isinstance(route, Mount):
                full = method in ("GET", "HEAD") and route.matches(scope)[0] == Match.FULL
            else:
                full = route.matches(scope)[0] == Match.FULL
            if full:
                allowed.append(method)
                break
    return allowed


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug = {404: "not-found", 405: "method-not-allowed", 413: "upload-too-large"}.get(
        exc.status_code, "bad-request" if exc.status_code < 500 else "internal-error"
    )
    title = PROBLEM_TYPES.get(slug, (0, "Error", ""))[1]
    headers = dict(exc.headers or {})
    detail = str(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"there is nothing at {request.url.path}"
    elif exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
        detail = f"{request.method} is not allowed here; allowed: {headers['Allow']}"
    problem = Problem(
        type=f"/problems/{slug}",
        title=title,
        status=exc.status_code,
        detail=detail,
        instance=request.url.path,
    )
    return problem_response(problem, headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Starlette runs this outside every middleware, the request id's too: the id is still set
    # (that middleware leaves it for this), but its header must be added here.
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    problem = ApiError("an unexpected error occurred; it has been logged").problem(request.url.path)
    request_id = current_request_id()
    return problem_response(problem, {REQUEST_ID_HEADER: request_id} if request_id else None)


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
