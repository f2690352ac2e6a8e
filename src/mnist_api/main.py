"""``mnist_api.main:app`` for ``uvicorn --workers N`` and process managers; the app is built
when a worker imports this module, from that worker's environment."""

from mnist_api.app import create_app

app = create_app()
