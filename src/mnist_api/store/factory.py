"""The store that the settings name."""

from __future__ import annotations

from mnist_api.settings import Settings
from mnist_api.store.base import PredictionStore


def make_store(settings: Settings) -> PredictionStore:
    if settings.store == "cassandra":
        from mnist_api.store.cassandra import CassandraStore

        return CassandraStore.from_settings(settings)
    if settings.store == "none":
        from mnist_api.store.null import NullStore

        return NullStore()
    from mnist_api.store.sqlite import SqliteStore

    return SqliteStore(settings.sqlite_path)
