"""Prediction storage behind one small protocol: SQLite (embedded default) and Cassandra."""

from mnist_api.store.base import (
    HistoryPage,
    HistoryQuery,
    PredictionRecord,
    PredictionStore,
    StoredImage,
    StoreError,
    StoreUnavailableError,
)

__all__ = [
    "HistoryPage",
    "HistoryQuery",
    "PredictionRecord",
    "PredictionStore",
    "StoreError",
    "StoreUnavailableError",
    "StoredImage",
]
