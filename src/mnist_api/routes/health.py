"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response

from mnist_api.schemas import Health, Readiness
from mnist_api.service import PredictionService
from mnist_api.store import StoreError

router = APIRouter(tags=["operations"])
PING_TIMEOUT_S = 2.0


@router.get("/healthz", summary="Is the process alive?")
async def get_health() -> Health:
    return Health()


@router.get(
    "/readyz",
    summary="Can the service answer uploads? (model loaded, store reachable)",
    responses={503: {"model": Readiness, "description": "not ready"}},
)
async def get_readiness(request: Request, response: Response) -> Readiness:
    service: PredictionService | None = getattr(request.app.state, "service", None)
    store_name = request.app.state.settings.store
    if service is None:
        response.status_code = 503
        return Readiness(
            status="not ready",
            model_loaded=False,
            model_version=None,
            store=store_name,
            store_reachable=False,
            detail="starting up",
        )
    detail = None
    try:
        await asyncio.wait_for(service.store.ping(), PING_TIMEOUT_S)
        reachable = True
    except (StoreError, TimeoutError) as exc:
        reachable, detail = False, f"store: {exc or 'no answer in time'}"
    if not reachable:
        response.status_code = 503
    return Readiness(
        status="ready" if reachable else "not ready",
        model_loaded=True,
        model_version=service.predictor.version,
        store=service.store.name,
        store_reachable=reachable,
        detail=detail,
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def get_metrics(request: Request) -> Response:
    metrics = request.app.state.metrics
    return Response(metrics.render(), media_type=metrics.content_type)
