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
    from mnist_api.predictions.repository.sqlite import SqliteRepository

    async def main() -> None:
        store = SqliteRepository(Path(path))
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
    from mnist_api.predictions.repository.sqlite import SCHEMA_VERSION, SqliteRepository

    path = tmp_path / "newer.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    store = SqliteRepository(path)
    with pytest.raises(StoreError, match="newer than this service"):
        await store.open()
