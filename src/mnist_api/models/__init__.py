"""The model lifecycle: which model answers, and inference through it, off the event loop.

Its public face is ``ModelRegistry`` (``predict`` answers the probabilities with the version that
computed them; ``reload`` swaps in what models/LATEST names), ``RegistryDep`` and the router
(``/v1/models``); ``engines`` are its internals.
"""

from mnist_api.models.dependencies import RegistryDep
from mnist_api.models.engines import Inference
from mnist_api.models.registry import ModelRegistry, ServedModel
from mnist_api.models.routes import router

__all__ = ["Inference", "ModelRegistry", "RegistryDep", "ServedModel", "router"]
