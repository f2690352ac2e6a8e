"""Keys: who may use the API, as what owner, at what rate.

Its public face: the router, the authentication middleware, the dependencies that hand routes
the principal once it holds a scope (``Predictor``, ``Reader``, ``Labeler``, ``Deleter``,
``Administrator``, ``Authenticated``), ``KeyService`` and ``KeyServiceDep``, the records routes
need (``Principal``, ``Scope``), the problems these add to an operation,
``open_key_repository``, and the ``mnist-api keys`` commands.
"""

from mnist_api.keys.commands import KeyCommand, run_key_command
from mnist_api.keys.records import ANONYMOUS, ApiKey, Principal, Scope, parse_scopes
from mnist_api.keys.repository import KeyRepository, open_key_repository
from mnist_api.keys.routes import router
from mnist_api.keys.security import (
    API_KEY,
    AUTH_PROBLEMS,
    BEARER,
    Administrator,
    Authenticated,
    AuthenticationMiddleware,
    Deleter,
    KeyServiceDep,
    Labeler,
    Predictor,
    Reader,
)
from mnist_api.keys.service import KeyService

__all__ = [
    "ANONYMOUS",
    "API_KEY",
    "AUTH_PROBLEMS",
    "BEARER",
    "Administrator",
    "ApiKey",
    "Authenticated",
    "AuthenticationMiddleware",
    "Deleter",
    "KeyCommand",
    "KeyRepository",
    "KeyService",
    "KeyServiceDep",
    "Labeler",
    "Predictor",
    "Principal",
    "Reader",
    "Scope",
    "open_key_repository",
    "parse_scopes",
    "router",
    "run_key_command",
]
