"""The ``KeyRepository`` protocol every store implements (stores raise the kernel's
``StoreError``, and ``StoreUnavailableError`` when their database cannot be reached)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from mnist_api.keys.records import ApiKey


class KeyRepository(Protocol):
    async def open(self) -> None: ...

    async def insert(self, key: ApiKey) -> None: ...

    async def get(self, key_id: str) -> ApiKey | None: ...

    async def list(self) -> list[ApiKey]: ...

    async def revoke(self, key_id: str, at: datetime) -> ApiKey | None:
        """The key, revoked (at ``at``, or earlier if it already was); None if there is none."""
        ...

    async def touch(self, key_id: str, at: datetime) -> None:
        """Record that the key was used (an existing key's ``last_used_at``)."""
        ...
