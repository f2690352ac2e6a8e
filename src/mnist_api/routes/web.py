"""The web page at ``/`` (static files shipped in the package) and the problem-type pages."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

from mnist_api.errors import PROBLEM_TYPES, NotFound

STATIC_DIR = Path(str(resources.files("mnist_api") / "static"))
router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


@router.get("/problems/{slug}")
async def problem_type(slug: str) -> HTMLResponse:
    if slug not in PROBLEM_TYPES:
        raise NotFound(f"no problem type {slug!r}")
    status, title, text = PROBLEM_TYPES[slug]
    return HTMLResponse(
        f"<!doctype html><title>{title}</title><h1>{status} {title}</h1><p>{text}</p>"
    )
