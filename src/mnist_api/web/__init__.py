"""The web page, the API's documents and the problem-type pages."""

from mnist_api.web.routes import STATIC_DIR, router

__all__ = ["STATIC_DIR", "router"]
