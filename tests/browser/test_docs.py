"""Swagger UI at /docs, offline, used as a person would: upload a digit with "Try it out"."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Route, expect

from tests.fixtures.servers import LiveServer

pytestmark = pytest.mark.browser


def test_upload_a_digit_from_swagger_ui(
    browser: Browser,
    live_server: LiveServer,
    golden: dict[int, bytes],
    tmp_path: Path,
    artifacts_dir: Path,
) -> None:
    outside: list[str] = []
    host = urlsplit(live_server.url).netloc
    # ReDoc's bundle shows its maker's logo from their CDN and hides it when that fails; it is
    # the only thing either page fetches from elsewhere.
    branding = "https://cdn.redoc.ly/redoc/logo-mini.svg"

    def guard(route: Route) -> None:
        if urlsplit(route.request.url).netloc == host:
            route.continue_()
        else:  # Swagger UI and ReDoc must come from the package, not a CDN
            if route.request.url != branding:
                outside.append(route.request.url)
            route.abort()

    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    try:
        context.route("**/*", guard)
        page = context.new_page()
        page.goto("/docs", wait_until="networkidle")
        operation = page.locator("#operations-predictions-create_prediction")
        expect(operation).to_be_visible()
        operation.locator(".opblock-summary").click()
        operation.get_by_role("button", name="Try it out").click()
        digit = tmp_path / "seven.png"
        digit.write_bytes(golden[7])
        operation.locator('input[type="file"]').set_input_files(digit)
        with page.expect_response(lambda r: r.url.endswith("/v1/predictions")) as answer:
            operation.get_by_role("button", name="Execute").click()
        response = answer.value
        assert response.status == 201
        assert response.json()["digit"] == 7
        shown = operation.locator(".live-responses-table tbody .response-col_status").first
        expect(shown).to_contain_text("201")
        shots = artifacts_dir / "browser"
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "11-swagger-ui-upload.png"), full_page=False)
        page.goto("/redoc", wait_until="networkidle")
        title = page.locator("h2", has_text="Recognise the digit in an uploaded image").first
        expect(title).to_be_visible()
    finally:
        context.close()
    assert not outside, outside
