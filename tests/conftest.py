"""Shared fixtures: the real MNIST files, a small model trained once per session on a subset,
apps over ASGI with their own SQLite file, and a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from mnist_train.data import DATA_DIR_ENV, FILES, Mnist, find_file, load_mnist
from mnist_train.runtime import import_tensorflow

# Test modules import TensorFlow as they are collected: load it first, without its start-up lines.
import_tensorflow()
ROOT = Path(__file__).resolve().parent.parent
GOLDEN_DIR = Path(__file__).parent / "data" / "golden"
ARTIFACTS_DIR = ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    configured = os.environ.get(DATA_DIR_ENV)
    if not configured:
        pytest.fail(f"set {DATA_DIR_ENV} to the folder with the four MNIST files")
    directory = Path(configured)
    missing = [spec.gz_name for spec in FILES if find_file(directory, spec) is None]
    if missing:
        pytest.fail(f"{directory} lacks {', '.join(missing)}")
    return directory


@pytest.fixture(scope="session")
def mnist(mnist_dir: Path) -> Mnist:
    return load_mnist(mnist_dir, allow_download=False)


@pytest.fixture(scope="session")
def model_root(mnist: Mnist, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small CNN trained on 12,000 real training images (about 98% on the test set)."""
    from mnist_train.train import TrainConfig, train

    root = tmp_path_factory.mktemp("models")
    config = TrainConfig(model_type="cnn", epochs=2, train_examples=12000, seed=7, verbose=0)
    result = train(config, mnist, root)
    assert result.metadata.test_accuracy > 0.95, result.metadata.test_accuracy
    return root


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    return ARTIFACTS_DIR


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**variables: str) -> dict[str, str]:
    """The environment of a person's new shell, built from nothing: what a command prints or
    does under it cannot depend on variables of the shell that runs the tests."""
    base = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(Path.home()), "LANG": "C.UTF-8"}
    return base | variables


def api_env(model_root: Path, **overrides: str) -> dict[str, str]:
    env = clean_env(MNIST_API_MODEL_PATH=str(model_root))
    env.update({f"MNIST_API_{key.upper()}": value for key, value in overrides.items()})
    return env


class LiveServer:
    """``mnist-api serve`` in a child process on a free port of 127.0.0.1."""

    def __init__(self, env: dict[str, str], log_path: Path, *, workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        command = [sys.executable, "-m", "mnist_api", "serve", "--port", str(self.port)]
        self.process = subprocess.Popen(
            [*command, "--workers", str(workers)],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def console(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready in {timeout} s: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> int:
        """SIGTERM, as a process manager stops it; the exit code (killed after 20 s)."""
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()
        return self.process.returncode


@pytest.fixture(scope="session")
def live_server(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A real uvicorn server on the SQLite store, shared by the HTTP and browser tests."""
    tmp = tmp_path_factory.mktemp("live")
    server = LiveServer(
        api_env(model_root, sqlite_path=str(tmp / "live.sqlite3")), tmp / "server.log"
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def golden() -> dict[int, bytes]:
    """One image per digit: MNIST test digits drawn dark on light paper at 10x size."""
    return {
        int(p.stem.split("-")[1]): p.read_bytes() for p in sorted(GOLDEN_DIR.glob("digit-*.png"))
    }


def render(png: bytes, fmt: str = "PNG", mode: str | None = None, invert: bool = False) -> bytes:
    """Re-encode an image: another format, mode or polarity."""
    import io

    from PIL import Image, ImageOps

    image = Image.open(io.BytesIO(png)).convert("L")
    if invert:
        image = ImageOps.invert(image)
    if mode == "I;16":
        import numpy as np

        image = Image.fromarray(np.asarray(image).astype(np.uint16) * 257)
    elif mode:
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@asynccontextmanager
async def running_app(model_root: Path, **overrides: object) -> AsyncIterator[object]:
    """An app with its lifespan running (model loaded, batcher started, store open)."""
    from mnist_api.app import create_app
    from mnist_api.settings import load_settings

    app = create_app(load_settings(model_path=model_root, **overrides))
    async with app.router.lifespan_context(app):
        yield app


@asynccontextmanager
async def asgi_client(app: object) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def sqlite_app(
    model_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[object]:
    """One app for the session, on a SQLite file of its own (tests must not assume it empty)."""
    path = tmp_path_factory.mktemp("sqlite") / "shared.sqlite3"
    async with running_app(model_root, sqlite_path=path) as app:
        yield app


@pytest_asyncio.fixture(loop_scope="session")
async def client(sqlite_app: object) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(sqlite_app) as http:
        yield http


@pytest_asyncio.fixture(loop_scope="session")
async def fresh_client(model_root: Path, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app with an empty SQLite store of its own."""
    async with (
        running_app(model_root, sqlite_path=tmp_path / "fresh.sqlite3") as app,
        asgi_client(app) as http,
    ):
        yield http


# --- Cassandra: the node started by scripts/cassandra, a keyspace of this session's own ---------


def cassandra_settings(keyspace: str, **overrides: object) -> object:
    from mnist_api.settings import load_settings

    values: dict[str, object] = {
        "store": "cassandra",
        "cassandra_keyspace": keyspace,
        "cassandra_consistency": "ONE",
        "cassandra_startup_timeout_s": 5.0,
        "cassandra_request_timeout_s": 5.0,
        "cassandra_reconnect_delay_ms": 500,
    }
    values.update(overrides)
    return load_settings(**values)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def cassandra_keyspace() -> AsyncIterator[str]:
    """A fresh keyspace, migrated with ``cql/``, dropped at the end of the session."""
    import secrets

    from mnist_api.store.migrations import (
        Migrator,
        connect,
        default_cql_dir,
        disconnect,
        load_migrations,
        run,
    )

    keyspace = f"mnist_test_{secrets.token_hex(4)}"
    settings = cassandra_settings(keyspace)
    try:
        cluster, session = await connect(settings, keyspace=None, wait_s=10)  # type: ignore[arg-type]
    except Exception as exc:  # the node is part of the test command's set-up
        pytest.fail(
            f"Cassandra is not answering on 127.0.0.1:9042 (scripts/cassandra start): {exc}"
        )
    await Migrator(settings, session, load_migrations(default_cql_dir())).upgrade()  # type: ignore[arg-type]
    try:
        yield keyspace
    finally:
        await run(session, f"DROP KEYSPACE IF EXISTS {keyspace}")
        await disconnect(cluster, session)
