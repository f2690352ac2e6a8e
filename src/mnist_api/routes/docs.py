"""OpenAPI helpers: documented problem responses."""

from __future__ import annotations

from typing import Any

from mnist_api.schemas import Problem

_DESCRIPTIONS = {
    400: "Malformed request: a cursor this API did not issue, or a body that is not valid "
    "JSON or multipart",
    404: "No such prediction",
    413: "Request body over the size limit, or an image over the pixel limit",
    415: "Image type not supported",
    422: "Missing field, empty file, not an image, or no digit in it",
    503: "Busy, timed out, or storage unreachable; see Retry-After",
}


RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before trying again",
        "schema": {"type": "integer", "minimum": 1},
    }
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Error responses documented with the problem-details schema (and ``Retry-After`` on 503)."""
    return {
        status: {"model": Problem, "description": _DESCRIPTIONS.get(status, "Error")}
        | ({"headers": RETRY_AFTER} if status == 503 else {})
        for status in statuses
    }
