"""Keys in the embedded SQLite file (table ``api_keys``, see ``kernel.sqlite``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mnist_api.kernel.sqlite import SqliteDatabase
from mnist_api.kernel.timing import from_ms, to_ms
from mnist_api.keys.records import ApiKey, Scope

# The record and its row meet here and nowhere else.
COLUMNS = (
    "id, name, secret_sha256, scopes, rate, burst, created_at_ms, last_used_at_ms, revoked_at_ms"
)
SELECT = f"SELECT {COLUMNS} FROM api_keys"


def _row(key: ApiKey) -> tuple[object, ...]:
    return (
        key.id,
        key.name,
        key.secret_sha256,
        ",".join(sorted(key.scopes)),
        key.rate,
        key.burst,
        to_ms(key.created_at),
        to_ms(key.last_used_at) if key.last_used_at else None,
        to_ms(key.revoked_at) if key.revoked_at else None,
    )


def _key(row: tuple[Any, ...]) -> ApiKey:
    key_id, name, digest, scopes, rate, burst, created, used, revoked = row
    return ApiKey(
        id=key_id,
        name=name,
        secret_sha256=bytes(digest),
        scopes=frozenset(Scope(s) for s in scopes.split(",") if s),
        rate=float(rate),
        burst=int(burst),
        created_at=from_ms(created),
        last_used_at=from_ms(used) if used is not None else None,
        revoked_at=from_ms(revoked) if revoked is not None else None,
    )


class SqliteKeyRepository:
    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database

    async def open(self) -> None:
        return None

    async def insert(self, key: ApiKey) -> None:
        sql = f"INSERT INTO api_keys ({COLUMNS}) VALUES ({', '.join('?' * 9)})"
        values = _row(key)
        await self._db.run(lambda c: c.execute(sql, values))

    async def get(self, key_id: str) -> ApiKey | None:
        row = await self._db.run(
            lambda c: c.execute(f"{SELECT} WHERE id = ?", (key_id,)).fetchone()
        )
        return _key(row) if row else None

    async def list(self) -> list[ApiKey]:
        rows = await self._db.run(
            lambda c: c.execute(f"{SELECT} ORDER BY created_at_ms").fetchall()
        )
        return [_key(row) for row in rows]

    async def revoke(self, key_id: str, at: datetime) -> ApiKey | None:
        sql = "UPDATE api_keys SET revoked_at_ms = ? WHERE id = ? AND revoked_at_ms IS NULL"
        args = (to_ms(at), key_id)
        await self._db.run(lambda c: c.execute(sql, args))
        return await self.get(key_id)

    async def touch(self, key_id: str, at: datetime) -> None:
        sql = "UPDATE api_keys SET last_used_at_ms = ? WHERE id = ?"
        args = (to_ms(at), key_id)
        await self._db.run(lambda c: c.execute(sql, args))
