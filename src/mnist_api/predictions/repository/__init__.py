"""Where predictions live, behind one protocol: SQLite (the embedded default), Cassandra, and a
store that keeps nothing (benchmarks only). Queries live here and nowhere else."""

from __future__ import annotations

from mnist_api.kernel.database import StoreError, StoreUnavailableError
from mnist_api.kernel.settings import Settings
from mnist_api.predictions.repository.base import PredictionRepository

__all__ = ["PredictionRepository", "StoreError", "StoreUnavailableError", "open_repository"]


def open_repository(settings: Settings) -> PredictionRepository:
    """The store the settings name (not yet opened: ``await repository.open()``)."""
    if settings.store == "cassandra":
        from mnist_api.predictions.repository.cassandra import CassandraRepository

        return CassandraRepository(settings)
    if settings.store == "none":
        from mnist_api.predictions.repository.null import NullRepository

        return NullRepository()
    from mnist_api.predictions.repository.sqlite import SqliteRepository

    return SqliteRepository(settings.sqlite_path)
