"""Domain errors that carry their HTTP status, and the one handler that writes them as
RFC 9457 problem details (``application/problem+json``)."""

from __future__ import annotations

import logging
from typing import ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mnist_api.schemas import Problem, ValidationIssue

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("mnist_api")


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


PROBLEM_TYPES: dict[str, tuple[int, str, str]] = {
    "bad-request": (400, "Bad request", "The request is malformed."),
    "invalid-cursor": (400, "Invalid cursor", "The cursor is not one this service issued."),
    "not-found": (404, "Not found", "There is nothing at this address."),
    "prediction-not-found": (404, "Prediction not found", "No prediction has this id."),
    "method-not-allowed": (405, "Method not allowed", "This address does not take the method."),
    "upload-too-large": (413, "Upload too large", "The file or request body is over the limit."),
    "too-many-pixels": (413, "Image has too many pixels", "Width x height is over the limit."),
    "unsupported-image-type": (
        415,
        "Unsupported image type",
        "Send PNG, JPEG, GIF, BMP, WebP or TIFF.",
    ),
    "validation-error": (422, "Invalid request", "A field is missing or has a wrong value."),
    "empty-file": (422, "Empty file", "The uploaded file has no bytes."),
    "invalid-image": (422, "Not a readable image", "The file is not an image, or is corrupt."),
    "no-ink": (422, "No digit in the image", "The image is blank or uniform."),
    "too-many-files": (422, "Too many files", "The batch holds more files than allowed."),
    "overloaded": (503, "Service busy", "The inference queue is full; retry after a moment."),
    "inference-timeout": (503, "Inference timed out", "The model did not answer in time."),
    "store-unavailable": (503, "Storage unavailable", "The database cannot be reached."),
    "unavailable": (503, "Service unavailable", "Retry after a moment."),
    "internal-error": (500, "Internal error", "An unexpected error; it has been logged."),
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
    issues = [
        ValidationIssue(
            loc=[str(part) for part in error.get("loc", ())],
            msg=str(error.get("msg", "")),
            type=str(error.get("type", "")),
        )
        for error in exc.errors()
    ]
    summary = "; ".join(f"{'.'.join(i.loc)}: {i.msg}" for i in issues) or "invalid request"
    problem = Problem(
        type="/problems/validation-error",
        title="Invalid request",
        status=422,
        detail=summary,
        instance=request.url.path,
        errors=issues,
    )
    return problem_response(problem)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug = {404: "not-found", 405: "method-not-allowed", 413: "upload-too-large"}.get(
        exc.status_code, "bad-request" if exc.status_code < 500 else "internal-error"
    )
    title = PROBLEM_TYPES.get(slug, (0, "Error", ""))[1]
    problem = Problem(
        type=f"/problems/{slug}",
        title=title,
        status=exc.status_code,
        detail=str(exc.detail),
        instance=request.url.path,
    )
    return problem_response(problem, dict(exc.headers or {}))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    problem = ApiError("an unexpected error occurred; it has been logged").problem(request.url.path)
    return problem_response(problem)


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
