"""The console of ``mnist-api serve``: one format for the service's and uvicorn's lines, and only
lines worth reading.

Each worker says once that it is ready (its model, the model's test accuracy, the store and the
address) and once that it stopped. Uvicorn's own start-up and shutdown chatter (eight lines per
worker) says less than that and is dropped; its warnings, errors, signals and access lines stay.
The configuration is a ``logging.config.dictConfig`` dictionary, which uvicorn applies in every
worker process it starts.
"""

from __future__ import annotations

import logging
from typing import Any

FORMAT = "%(asctime)s %(levelname)-7s [%(process)d] %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
# Uvicorn's lifecycle lines that the service's own ready and stopped lines replace.
UVICORN_CHATTER = (
    "Started server process",
    "Started parent process",
    "Waiting for application startup",
    "Application startup complete",
    "Uvicorn running on",
    "Shutting down",
    "Waiting for application shutdown",
    "Application shutdown complete",
    "Finished server process",
    "Waiting for child process",
    "Terminated child process",
    "Stopping parent process",
)


class UvicornLines(logging.Filter):
    """Drops uvicorn's lifecycle chatter, and names the rest after uvicorn rather than after its
    logger ``uvicorn.error``, which also carries lines that are not errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.name = "uvicorn"
        return record.levelno > logging.INFO or not str(record.msg).startswith(UVICORN_CHATTER)


def log_config(level: str = "info") -> dict[str, Any]:
    """Logging for the server process and each of its workers."""
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"chatter": {"()": UvicornLines}},
        "formatters": {"plain": {"format": FORMAT, "datefmt": DATE_FORMAT}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "stream": "ext://sys.stderr",
            },
        },
        "loggers": {
            "uvicorn": {"level": level, "handlers": ["console"], "propagate": False},
            "uvicorn.error": {"level": level, "filters": ["chatter"]},
            "uvicorn.access": {"level": level, "handlers": ["console"], "propagate": False},
            "mnist_api": {"level": level, "handlers": ["console"], "propagate": False},
        },
        "root": {"level": "WARNING", "handlers": ["console"]},
    }
