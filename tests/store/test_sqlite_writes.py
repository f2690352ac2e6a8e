"""SQLite's group commit: inserts that arrive while a write runs share the next transaction, and
every insert waiting on a write hears how it ended, whatever ended it; none waits for ever."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from mnist_api.kernel.sqlite import SqliteDatabase
from mnist_api.predictions.records import PredictionRecord
from mnist_api.predictions.repository.sqlite import SqliteRepository
from tests.store.test_contract import ALICE, record

pytestmark = pytest.mark.asyncio(loop_scope="session")
Outcome = BaseException | None


@pytest_asyncio.fixture(loop_scope="session")
async def store(tmp_path: Path) -> AsyncIterator[SqliteRepository]:
    database = SqliteDatabase(tmp_path / "writes.sqlite3")
    await database.open()
    try:
        yield SqliteRepository(database)
    finally:
        await database.close()


async def first_write_ends_with(
    store: SqliteRepository, error: BaseException
) -> tuple[list[PredictionRecord], list[Outcome]]:
    """Five inserts: the first one's write ends with ``error`` (nothing written) after the other
    four have queued behind it; each insert's record and how its ``insert`` ended."""
    database = store._db
    run = database.run
    started, release = asyncio.Event(), asyncio.Event()

    async def once(fn: Callable[[Any], Any]) -> Any:
        database.run = run  # type: ignore[method-assign]
        started.set()
        await release.wait()
        raise error

    database.run = once  # type: ignore[method-assign]
    records = [record(digit) for digit in range(1, 6)]
    writes = [asyncio.create_task(store.insert(records[0], b"img", ALICE))]
    await started.wait()
    writes += [asyncio.create_task(store.insert(rec, b"img", ALICE)) for rec in records[1:]]
    await asyncio.sleep(0)  # the four are queued
    release.set()
    async with asyncio.timeout(10):
        outcomes = await asyncio.gather(*writes, return_exceptions=True)
    return records, outcomes


async def test_a_fault_in_a_write_reaches_its_group_and_the_next_group_is_written(
    store: SqliteRepository,
) -> None:
    records, outcomes = await first_write_ends_with(store, RuntimeError("a fault"))
    assert isinstance(outcomes[0], RuntimeError)
    assert outcomes[1:] == [None] * 4
    assert await store.get(records[0].id, None) is None
    assert [await store.get(rec.id, None) for rec in records[1:]] == records[1:]


async def test_a_cancelled_write_cancels_its_group_and_the_queue(store: SqliteRepository) -> None:
    records, outcomes = await first_write_ends_with(store, asyncio.CancelledError())
    assert all(isinstance(outcome, asyncio.CancelledError) for outcome in outcomes)
    assert [await store.get(rec.id, None) for rec in records] == [None] * 5
    later = record(7)
    async with asyncio.timeout(10):
        await store.insert(later, b"img", ALICE)  # a new writer starts
    assert await store.get(later.id, None) == later
