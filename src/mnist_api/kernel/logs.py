"""The console of ``mnist-api serve``: one format for the service's and uvicorn's lines, and only
lines worth reading.

Each worker says once that it is ready (its model, the model's test accuracy, the store and the
address) and once that it stopped. Uvicorn's own start-up and shutdown chatter (eight lines per
worker) says less than that and is dropped; its warnings, errors, signals and access lines stay.
The configuration is a ``logging.config.dictConfig`` dictionary, which uvicorn applies in every
worker process it starts.

With ``MNIST_API_LOG_FORMAT=json`` every line is one JSON object (time, level, logger, process,
message, and the request id of the request it was written for), for a log collector; one access
line per request, with its route, status and duration, replaces uvicorn's.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["plain", "json"]

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


class JsonLines(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        entry: dict[str, object] = {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "process": record.process,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            entry["request_id"] = request_id
        http = getattr(record, "http", None)
        if http is not None:
            entry["http"] = http
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def log_config(level: str = "info", log_format: LogFormat = "plain") -> dict[str, Any]:
    """Logging for the server process and each of its workers."""
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "chatter": {"()": UvicornLines},
            "request_id": {"()": "mnist_api.kernel.requestid.RequestIdFilter"},
        },
        "formatters": {
            "plain": {"format": FORMAT, "datefmt": DATE_FORMAT},
            "json": {"()": JsonLines},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": log_format,
                "filters": ["request_id"],
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
