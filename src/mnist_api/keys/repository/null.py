"""No keys (``MNIST_API_STORE=none``, which the settings allow only with authentication off)."""

from __future__ import annotations

from datetime import datetime

from mnist_api.keys.records import ApiKey


class NullKeyRepository:
    async def open(self) -> None:
        return None

    async def insert(self, key: ApiKey) -> None:
        raise NotImplementedError("MNIST_API_STORE=none keeps no keys")

    async def get(self, key_id: str) -> ApiKey | None:
        return None

    async def list(self) -> list[ApiKey]:
        return []

    async def revoke(self, key_id: str, at: datetime) -> ApiKey | None:
        return None

    async def touch(self, key_id: str, at: datetime) -> None:
        return None
