"""``Annotated`` dependencies for the kernel's resources, taken from the lifespan's state."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from mnist_api.kernel.drain import Drain
from mnist_api.kernel.metrics import Metrics
from mnist_api.kernel.settings import Settings


async def get_settings(request: Request) -> Settings:
    return cast(Settings, request.state.settings)


async def get_metrics(request: Request) -> Metrics:
    return cast(Metrics, request.state.metrics)


async def get_drain(request: Request) -> Drain:
    return cast(Drain, request.state.drain)


SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
DrainDep = Annotated[Drain, Depends(get_drain)]
