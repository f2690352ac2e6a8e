"""Where keys live: the same database as the predictions (SQLite or Cassandra)."""

from __future__ import annotations

from mnist_api.kernel.databases import CassandraDatabase, Database, NullDatabase
from mnist_api.keys.repository.base import KeyRepository

__all__ = ["KeyRepository", "open_key_repository"]


def open_key_repository(database: Database) -> KeyRepository:
    """The key repository on an opened database (then ``await repository.open()``)."""
    if isinstance(database, CassandraDatabase):
        from mnist_api.keys.repository.cassandra import CassandraKeyRepository

        return CassandraKeyRepository(database)
    if isinstance(database, NullDatabase):
        from mnist_api.keys.repository.null import NullKeyRepository

        return NullKeyRepository()
    from mnist_api.keys.repository.sqlite import SqliteKeyRepository

    return SqliteKeyRepository(database)
