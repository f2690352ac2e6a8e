"""Where predictions live, behind one protocol: SQLite (the embedded default), Cassandra, and a
store that keeps nothing (benchmarks only). Queries live here and nowhere else."""

from __future__ import annotations

from mnist_api.kernel.database import StoreError, StoreUnavailableError
from mnist_api.kernel.databases import CassandraDatabase, Database, NullDatabase
from mnist_api.kernel.settings import Settings
from mnist_api.predictions.repository.base import PredictionRepository

__all__ = ["PredictionRepository", "StoreError", "StoreUnavailableError", "open_repository"]


def open_repository(database: Database, settings: Settings) -> PredictionRepository:
    """The prediction repository on an opened database (then ``await repository.open()``)."""
    if isinstance(database, CassandraDatabase):
        from mnist_api.predictions.repository.cassandra import CassandraRepository

        return CassandraRepository(
            database, retention_s=settings.retention_s, review_days=settings.review_days
        )
    if isinstance(database, NullDatabase):
        from mnist_api.predictions.repository.null import NullRepository

        return NullRepository()
    from mnist_api.predictions.repository.sqlite import SqliteRepository

    return SqliteRepository(
        database, retention_s=settings.retention_s, purge_interval_s=settings.purge_interval_s
    )
