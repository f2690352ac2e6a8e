"""Predictions: upload a digit, browse, correct and delete the history.

Its public face: the routers, ``PredictionService`` and ``ServiceDep``, and ``open_repository``;
everything else (records, repositories, preprocessing, schemas) is internal to the subject.
"""

from mnist_api.predictions.dependencies import ServiceDep
from mnist_api.predictions.repository import PredictionRepository, open_repository
from mnist_api.predictions.routes import legacy_router, router
from mnist_api.predictions.service import PredictionService

__all__ = [
    "PredictionRepository",
    "PredictionService",
    "ServiceDep",
    "legacy_router",
    "open_repository",
    "router",
]
