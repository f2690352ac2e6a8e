"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response

from mnist_api.kernel.database import StoreError
from mnist_api.kernel.dependencies import DrainDep, MetricsDep, SettingsDep
from mnist_api.models import RegistryDep
from mnist_api.operations.schemas import Health, Readiness
from mnist_api.predictions import ServiceDep

router = APIRouter(tags=["operations"])
PING_TIMEOUT_S = 2.0


@router.get("/healthz", summary="Is the process alive?")
async def get_health() -> Health:
    return Health()


@router.get(
    "/readyz",
    summary="Can the service answer uploads? (model loaded, store reachable, not stopping)",
    responses={503: {"model": Readiness, "description": "not ready, or shutting down"}},
)
async def get_readiness(
    response: Response,
    settings: SettingsDep,
    drain: DrainDep,
    registry: RegistryDep,
    predictions: ServiceDep,
) -> Readiness:
    detail = None
    try:
        await asyncio.wait_for(predictions.ping_store(), PING_TIMEOUT_S)
        reachable = True
    except (StoreError, TimeoutError) as exc:
        reachable, detail = False, f"store: {exc or 'no answer in time'}"
    ready = reachable and not drain.draining
    if drain.draining:
        detail = "shutting down: finishing the requests in flight"
    if not ready:
        response.status_code = 503
    return Readiness(
        status="ready" if ready else "not ready",
        model_loaded=True,
        model_version=registry.served.version,
        store=settings.store,
        store_reachable=reachable,
        detail=detail,
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def get_metrics(metrics: MetricsDep) -> Response:
    return Response(metrics.render(), media_type=metrics.content_type)
