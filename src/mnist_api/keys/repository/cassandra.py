"""Keys in Cassandra (table ``api_keys``, migration ``0002``): a small table read by id; every
worker of every instance sees the same keys. Statements are prepared once, at start-up."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mnist_api.kernel.databases import CassandraDatabase, Prepared
from mnist_api.keys.records import ApiKey, Scope

# The record and its row meet here and nowhere else.
COLUMNS = "id, name, secret_sha256, scopes, rate, burst, created_at, last_used_at, revoked_at"


def _values(key: ApiKey) -> list[Any]:
    return [
        key.id,
        key.name,
        key.secret_sha256,
        {str(scope) for scope in key.scopes},
        key.rate,
        key.burst,
        key.created_at,
    ]


def _key(row: dict[str, Any]) -> ApiKey:
    return ApiKey(
        id=str(row["id"]),
        name=str(row["name"]),
        secret_sha256=bytes(row["secret_sha256"]),
        scopes=frozenset(Scope(s) for s in row["scopes"] or ()),
        rate=float(row["rate"]),
        burst=int(row["burst"]),
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )


class CassandraKeyRepository:
    def __init__(self, database: CassandraDatabase) -> None:
        self._db = database
        self._ps: dict[str, Prepared] = {}

    async def open(self) -> None:
        ks = self._db.keyspace
        self._ps = await self._db.prepare(
            {
                "insert": f"INSERT INTO {ks}.api_keys (id, name, secret_sha256, scopes, rate, "
                "burst, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                "get": f"SELECT {COLUMNS} FROM {ks}.api_keys WHERE id = ?",
                "list": f"SELECT {COLUMNS} FROM {ks}.api_keys",
                "revoke": f"UPDATE {ks}.api_keys SET revoked_at = ? WHERE id = ?",
                "touch": f"UPDATE {ks}.api_keys SET last_used_at = ? WHERE id = ?",
            }
        )

    async def insert(self, key: ApiKey) -> None:
        await self._db.execute(self._ps["insert"], _values(key), action="insert key")

    async def get(self, key_id: str) -> ApiKey | None:
        result = await self._db.execute(self._ps["get"], [key_id], action="read key")
        row = result.first()
        return _key(row.as_dict()) if row is not None else None

    async def list(self) -> list[ApiKey]:
        result = await self._db.execute(self._ps["list"], [], action="list keys")
        keys = [_key(row.as_dict()) for row in result]
        return sorted(keys, key=lambda key: key.created_at)

    async def revoke(self, key_id: str, at: datetime) -> ApiKey | None:
        key = await self.get(key_id)
        if key is None or key.revoked_at is not None:
            return key
        await self._db.execute(self._ps["revoke"], [at, key_id], action="revoke key")
        return await self.get(key_id)

    async def touch(self, key_id: str, at: datetime) -> None:
        # Only for a key read a moment ago (an UPDATE of a missing row would create one).
        await self._db.execute(self._ps["touch"], [at, key_id], action="touch key")
