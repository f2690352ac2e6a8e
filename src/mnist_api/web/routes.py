"""The web page at ``/`` (static files shipped in the package), the API's documents (the OpenAPI
spec, Swagger UI, ReDoc), and the problem-type pages."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from mnist_api.kernel.dependencies import SettingsDep
from mnist_api.kernel.errors import PROBLEM_TYPES, NotFound
from mnist_api.openapi import served_spec

STATIC_DIR = Path(str(resources.files("mnist_api.web") / "static"))
router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


VENDOR = "/static/vendor"


@router.get("/openapi.json")
async def openapi_document(request: Request, settings: SettingsDep) -> JSONResponse:
    return JSONResponse(served_spec(request.app, request, settings.public_url))


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI from the package's own copy: it works without a network."""
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{VENDOR}/swagger-ui/swagger-ui-bundle.js",
        swagger_css_url=f"{VENDOR}/swagger-ui/swagger-ui.css",
        swagger_favicon_url=f"{VENDOR}/swagger-ui/favicon-32x32.png",
    )


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(
        openapi_url="/openapi.json",
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{VENDOR}/redoc/redoc.standalone.js",
        redoc_favicon_url=f"{VENDOR}/swagger-ui/favicon-32x32.png",
        with_google_fonts=False,
    )


@router.get("/problems/{slug}")
async def problem_type(slug: str) -> HTMLResponse:
    if slug not in PROBLEM_TYPES:
        raise NotFound(f"no problem type {slug!r}")
    status, title, text = PROBLEM_TYPES[slug]
    return HTMLResponse(
        f"<!doctype html><title>{title}</title><h1>{status} {title}</h1><p>{text}</p>"
    )
