"""Operations: liveness, readiness and metrics, for process managers and monitoring."""

from mnist_api.operations.routes import router

__all__ = ["router"]
