"""Several processes (uvicorn workers) opening the same SQLite file at the same moment, when it
does not exist yet: every one of them must get a working store."""

from __future__ import annotations

import asyncio
import multiprocessing
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

PROCESSES = 6
ROUNDS = 15


def _open_at_once(path: str, barrier: Barrier) -> None:
    from mnist_api.kernel.sqlite import SqliteDatabase

    async def main() -> None:
        store = SqliteDatabase(Path(path))
        barrier.wait(timeout=30)
        await store.open()
        try:
            await store.ping()
        finally:
            await store.close()

    asyncio.run(main())


def test_workers_creating_the_database_together_all_open_it(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    failures: list[str] = []
    for attempt in range(ROUNDS):
        path = tmp_path / f"round-{attempt}" / "predictions.sqlite3"
        barrier = context.Barrier(PROCESSES)
        workers = [
            context.Process(target=_open_at_once, args=(str(path), barrier))
            for _ in range(PROCESSES)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        codes = [worker.exitcode for worker in workers]
        if any(code != 0 for code in codes):
            failures.append(f"round {attempt}: exit codes {codes}")
    assert not failures, failures


@pytest.mark.asyncio(loop_scope="session")
async def test_a_database_from_a_newer_service_is_refused(tmp_path: Path) -> None:
    import sqlite3

    from mnist_api.kernel.database import StoreError
    from mnist_api.kernel.sqlite import SCHEMA_VERSION, SqliteDatabase

    path = tmp_path / "newer.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    store = SqliteDatabase(path)
    with pytest.raises(StoreError, match="newer than this service"):
        await store.open()


@pytest.mark.asyncio(loop_scope="session")
async def test_a_file_from_before_keys_is_upgraded_in_place(tmp_path: Path) -> None:
    """A file of schema 1 (before keys): opened by this version, its predictions are kept and
    belong to ``anonymous``, and keys can be stored."""
    import sqlite3

    from mnist_api.kernel.sqlite import MIGRATIONS, SCHEMA_VERSION, SqliteDatabase
    from mnist_api.predictions.records import HistoryQuery, new_id
    from mnist_api.predictions.repository.sqlite import SqliteRepository

    path = tmp_path / "v1.sqlite3"
    old_id = new_id()
    with sqlite3.connect(path) as conn:
        conn.executescript(MIGRATIONS[0][1])
        conn.execute("PRAGMA user_version=1")
        conn.execute(
            "INSERT INTO predictions (id, ticks, digit, confidence, probabilities, model_version, "
            "created_at_ms, content_type, width, height, size_bytes, sha256, input_pixels, image) "
            "VALUES (?, ?, 3, 0.9, '[0,0,0,0.9,0,0,0,0,0,0.1]', 'v', 0, 'image/png', 1, 1, 1, "
            "'x', x'00', x'00')",
            (str(old_id), old_id.time),
        )
    database = SqliteDatabase(path)
    await database.open()
    try:
        store = SqliteRepository(database)
        page = await store.history(HistoryQuery(limit=5, owner="anonymous"))
        assert [(r.id, r.owner) for r in page.items] == [(old_id, "anonymous")]
        version = await database.run(lambda c: c.execute("PRAGMA user_version").fetchone()[0])
        assert version == SCHEMA_VERSION
        tables = await database.run(
            lambda c: [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        )
        assert "api_keys" in tables
    finally:
        await database.close()
