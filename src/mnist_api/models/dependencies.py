"""``RegistryDep``: the lifespan's model registry, for routes."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from mnist_api.models.registry import ModelRegistry


async def get_registry(request: Request) -> ModelRegistry:
    return cast(ModelRegistry, request.state.registry)


RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
