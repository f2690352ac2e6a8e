"""Errors that reach the client: a store fault is a 500 problem (logged), not a 503 to retry."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from mnist_api.kernel.database import StoreError
from mnist_api.kernel.errors import PROBLEM_JSON, install_handlers


@pytest.mark.asyncio(loop_scope="session")
async def test_a_store_fault_is_an_internal_error_without_retry_after(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = FastAPI()
    install_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise StoreError("UNIQUE constraint failed: predictions.id")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM_JSON
    assert "retry-after" not in response.headers
    assert response.json()["type"] == "/problems/internal-error"
    assert "UNIQUE" not in response.text  # the details are logged, not shown
    assert any("UNIQUE" in r.getMessage() or r.exc_info for r in caplog.records)
