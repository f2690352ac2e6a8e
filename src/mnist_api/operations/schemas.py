"""The answers of the operations endpoints."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """Whether the service can answer uploads."""

    model_config = ConfigDict(protected_namespaces=())

    status: Literal["ready", "not ready"]
    model_loaded: bool
    model_version: str | None
    store: str
    store_reachable: bool
    detail: str | None = None
