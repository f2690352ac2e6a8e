"""``mnist-api``: serve the API, manage API keys (``keys create|list|revoke``), export the
labelled predictions for training (``export-labels``), and manage the Cassandra schema
(``db upgrade|status|history|unlock``)."""

from __future__ import annotations

import argparse
import asyncio
import atexit
import gc
import logging
import logging.config
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_api import __version__
from mnist_api.kernel.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from mnist_api.kernel.drain import Drain

log = logging.getLogger("mnist_api")
# Threads that finish a model call or a database write wait for the event loop's thread to give
# up the GIL; the default 5 ms switch interval adds up to that to every hand-off, and a request
# makes several.
SWITCH_INTERVAL_S = 0.0005


def freeze_loaded_objects() -> None:
    """Once the model and the store are loaded: everything so far lives as long as the process,
    so keep it out of the garbage collector's full passes, which would stall requests (a full
    pass over TensorFlow's objects takes about 250 ms on the event loop's thread)."""
    gc.collect()
    gc.freeze()


def serving_app(settings: Settings | None = None, *, drain: Drain | None = None) -> FastAPI:
    """The app as ``mnist-api serve`` runs it, in each worker process: the process tuned for
    serving, which an app built for tests leaves alone; ``drain``: its server's. A worker reads
    its settings from the environment."""
    from mnist_api.app import create_app

    sys.setswitchinterval(SWITCH_INTERVAL_S)  # once, for the whole process
    return create_app(settings or load_settings(), on_ready=freeze_loaded_objects, drain=drain)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mnist-api",
        description="The MNIST digit-recognition service. Settings come from MNIST_API_* "
        "environment variables (see the README).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="run the HTTP server (uvicorn)")
    serve.add_argument("--host", help="default: MNIST_API_HOST or 127.0.0.1")
    serve.add_argument("--port", type=int, help="default: MNIST_API_PORT or 8000")
    serve.add_argument("--workers", type=int, help="default: MNIST_API_WORKERS or 1")
    serve.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error", "critical"]
    )

    keys = sub.add_parser(
        "keys", help="API keys (in the store MNIST_API_STORE names, shared by every worker)"
    )
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = keys_sub.add_parser(
        "create", help="create a key; prints its secret, once, on standard output"
    )
    create.add_argument("--name", required=True, help="who or what the key is for")
    create.add_argument(
        "--scopes",
        help="comma-separated, of predict, read, label, delete, admin (admin includes the "
        "others; default: predict,read,label,delete)",
    )
    create.add_argument(
        "--rate", help="requests per second, e.g. 10/s (default: MNIST_API_DEFAULT_KEY_RATE)"
    )
    create.add_argument(
        "--burst", type=int, help="requests at once (default: two seconds' worth, at least 50)"
    )
    keys_sub.add_parser("list", help="list keys (never their secrets)")
    revoke = keys_sub.add_parser("revoke", help="revoke a key: every worker refuses it soon after")
    revoke.add_argument("key_id", metavar="ID")

    export = sub.add_parser(
        "export-labels",
        help="write every labelled prediction (its 28x28 input, label, id, times, model) to an "
        ".npz corrections file for mnist-train",
    )
    export.add_argument("--out", type=Path, required=True, metavar="FILE")
    export.add_argument("--owner", metavar="KEY_ID", help="only the predictions of this key")
    export.add_argument(
        "--since", type=_moment, metavar="TIME", help="labelled at or after (ISO 8601, UTC)"
    )
    export.add_argument("--before", type=_moment, metavar="TIME", help="labelled before")

    db = sub.add_parser("db", help="Cassandra schema migrations (cql/)")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_sub.add_parser("upgrade", help="create the keyspace and apply pending migrations")
    db_sub.add_parser("status", help="list applied and pending migrations")
    db_sub.add_parser("history", help="list applied migrations with when and by whom")
    db_sub.add_parser(
        "unlock", help="release the migration lock of an upgrade that was killed (none may run)"
    )
    return parser


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time (ISO 8601, e.g. 2026-12-01 or 2026-12-01T12:00:00Z)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _export(args: argparse.Namespace) -> int:
    from mnist_api.predictions import export_labels

    settings = load_settings(allow_anonymous=True)
    done = asyncio.run(
        export_labels(settings, args.out, owner=args.owner, since=args.since, before=args.before)
    )
    print(
        f"exported {done.count} labelled predictions to {done.path} "
        f"({done.held_out} of them held out for mnist-train compare)"
    )
    return 0


def _check_model(settings: Settings) -> None:
    """Fail before starting uvicorn when the artifact is missing or unreadable."""
    if settings.inference_mode == "off":
        return
    from mnist_core.artifact import read_metadata
    from mnist_core.errors import ArtifactError

    try:
        read_metadata(settings.model_path)
    except ArtifactError as exc:
        raise SettingsError(f"model: {exc}") from exc


def _serve(args: argparse.Namespace) -> None:
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE

    from mnist_api.kernel.logs import log_config
    from mnist_api.kernel.metrics import MULTIPROCESS_DIR
    from mnist_api.kernel.ratelimit import create_file, shared_memory_dir

    given = {"host": args.host, "port": args.port, "workers": args.workers}
    settings = load_settings(**{key: value for key, value in given.items() if value is not None})
    _check_model(settings)
    # The workers' shared token buckets: one table for the instance, deleted when it stops.
    rate_limits = create_file()
    atexit.register(rate_limits.unlink, missing_ok=True)
    settings = settings.model_copy(update={"rate_limit_file": rate_limits})
    if settings.workers > 1:
        # /metrics for the whole instance: the workers keep their values in files there
        # (prometheus_client's multiprocess mode, chosen when a worker imports it).
        metrics_dir = tempfile.mkdtemp(prefix="mnist-api-metrics-", dir=shared_memory_dir())
        atexit.register(shutil.rmtree, metrics_dir, ignore_errors=True)
        os.environ[MULTIPROCESS_DIR] = metrics_dir
    # Workers build their own settings from the environment: hand them the command line's.
    os.environ.update(
        MNIST_API_HOST=settings.host,
        MNIST_API_PORT=str(settings.port),
        MNIST_API_WORKERS=str(settings.workers),
        MNIST_API_RATE_LIMIT_FILE=str(rate_limits),
    )
    logging_config = log_config(args.log_level, settings.log_format)
    logging.config.dictConfig(logging_config)
    plural = "s" if settings.workers > 1 else ""
    log.info(
        "serving http://%s:%d with %d worker%s (Ctrl-C stops)",
        settings.host,
        settings.port,
        settings.workers,
        plural,
    )
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": args.log_level,
        "log_config": logging_config,
        # In JSON, the service's own access line (mnist_api.access) replaces uvicorn's.
        "access_log": settings.log_format == "plain",
        # After SIGTERM and the drain delay, how long the requests in flight may take.
        "timeout_graceful_shutdown": settings.grace_period_s - settings.drain_delay_s,
    }
    if settings.workers > 1:
        from mnist_api.kernel.workers import Workers

        # Each worker builds its app with its own drain (the config's app is replaced there).
        config = uvicorn.Config(serving_app, factory=True, **common)
        workers = Workers(
            config,
            serving_app,
            settings.workers,
            drain_delay_s=settings.drain_delay_s,
            grace_period_s=settings.grace_period_s,
        )
        status = workers.run()
        if status:
            sys.exit(status)
        return
    from mnist_api.kernel.drain import Drain, DrainingServer

    drain = Drain()
    server = DrainingServer(
        uvicorn.Config(serving_app(settings, drain=drain), **common), drain, settings.drain_delay_s
    )
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def _db(args: argparse.Namespace) -> int:
    from mnist_api.kernel.migrations import run_command

    settings = load_settings(store="cassandra")
    asyncio.run(run_command(settings, args.db_command))
    return 0


def _keys(args: argparse.Namespace) -> int:
    from mnist_api.keys import KeyCommand, run_key_command

    command = KeyCommand(
        action=args.keys_command,
        name=getattr(args, "name", None),
        scopes=getattr(args, "scopes", None),
        rate=getattr(args, "rate", None),
        burst=getattr(args, "burst", None),
        key_id=getattr(args, "key_id", None),
    )
    # Key administration runs where the service does, whatever address it serves on.
    settings = load_settings(allow_anonymous=True)
    return asyncio.run(run_key_command(settings, command))


def main(argv: Sequence[str] | None = None) -> int:
    from mnist_api.kernel.database import StoreError

    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "serve":
            _serve(args)
            return 0
        if args.command == "keys":
            return _keys(args)
        if args.command == "export-labels":
            return _export(args)
        return _db(args)
    except (SettingsError, StoreError) as exc:
        print(f"mnist-api: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
