"""Small ``Annotated`` dependencies that hand the lifespan's resources to routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from mnist_api.errors import Unavailable
from mnist_api.service import PredictionService


def get_service(request: Request) -> PredictionService:
    service: PredictionService | None = getattr(request.app.state, "service", None)
    if service is None:
        raise Unavailable("the service is starting or stopping")
    return service


ServiceDep = Annotated[PredictionService, Depends(get_service)]
