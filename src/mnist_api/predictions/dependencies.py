"""``ServiceDep``: the lifespan's prediction service, for routes."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from mnist_api.predictions.service import PredictionService


def get_service(request: Request) -> PredictionService:
    return cast(PredictionService, request.state.predictions)


ServiceDep = Annotated[PredictionService, Depends(get_service)]
