"""Predictions: upload a digit, browse, correct and delete the history.

Its public face: the routers, ``PredictionService`` and ``ServiceDep``, ``open_repository``, and
the ``mnist-api export-labels`` command (``export_labels``); everything else (records,
repositories, preprocessing, schemas) is internal to the subject.
"""

from mnist_api.predictions.dependencies import ServiceDep
from mnist_api.predictions.export import Exported, export_labels
from mnist_api.predictions.repository import PredictionRepository, open_repository
from mnist_api.predictions.routes import legacy_router, review_router, router
from mnist_api.predictions.service import PredictionService

__all__ = [
    "Exported",
    "PredictionRepository",
    "PredictionService",
    "ServiceDep",
    "export_labels",
    "legacy_router",
    "open_repository",
    "review_router",
    "router",
]
