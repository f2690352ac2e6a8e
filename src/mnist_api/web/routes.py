"""The web page at ``/`` (static files shipped in the package), the API's documents (the OpenAPI
spec, Swagger UI, ReDoc), and the problem-type pages."""

from __future__ import annotations

import html
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html
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
    spec = served_spec(
        request.app, request, settings.public_url, optional_auth=settings.auth == "off"
    )
    return JSONResponse(spec)


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI from the package's own copy: it works without a network. Its start-up is a
    static script (``static/docs/swagger-init.js``), not an inline one, which the page's
    Content-Security-Policy would refuse."""
    title = html.escape(f"{request.app.title} - Swagger UI")
    return HTMLResponse(
        f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="{VENDOR}/swagger-ui/swagger-ui.css">
<link rel="icon" href="{VENDOR}/swagger-ui/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{VENDOR}/swagger-ui/swagger-ui-bundle.js"></script>
<script src="/static/docs/swagger-init.js"></script>
</body>
</html>
"""
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
