"""The contract every ``PredictionRepository`` must keep, run against SQLite and a real
Cassandra node alike."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio

from mnist_api.kernel.cassandra import run
from mnist_api.predictions.records import (
    UUID_EPOCH_OFFSET,
    HistoryQuery,
    ImageMeta,
    PredictionRecord,
    id_time,
    new_id,
)
from mnist_api.predictions.repository import PredictionRepository
from mnist_api.predictions.repository.cassandra import CassandraRepository
from mnist_api.predictions.repository.sqlite import SqliteRepository
from tests.fixtures.cassandra import cassandra_settings

pytestmark = pytest.mark.asyncio(loop_scope="session")


def id_at(moment: datetime) -> uuid.UUID:
    """A version-1 UUID carrying ``moment`` (plus random low bits), as ``new_id`` would."""
    ticks = int(moment.timestamp() * 10_000_000) + UUID_EPOCH_OFFSET + int.from_bytes(os.urandom(1))
    fields = (
        ticks & 0xFFFFFFFF,
        (ticks >> 32) & 0xFFFF,
        ((ticks >> 48) & 0x0FFF) | 0x1000,
        0x80 | (os.urandom(1)[0] & 0x3F),
        os.urandom(1)[0],
        int.from_bytes(os.urandom(6)) | (1 << 40),
    )
    return uuid.UUID(fields=fields)


def record(digit: int = 7, *, prediction_id: uuid.UUID | None = None) -> PredictionRecord:
    pid = prediction_id or new_id()
    probs = [0.01] * 10
    probs[digit] = 0.91
    return PredictionRecord(
        id=pid,
        digit=digit,
        confidence=0.91,
        probabilities=tuple(probs),
        model_version="cnn-test",
        created_at=id_time(pid),
        image=ImageMeta("image/png", 280, 140, 1234, hashlib.sha256(pid.bytes).hexdigest()),
        input_pixels=bytes(range(256)) * 3 + bytes(16),
    )


@pytest_asyncio.fixture(loop_scope="session")
async def sqlite_store(tmp_path: Path) -> AsyncIterator[PredictionRepository]:
    impl = SqliteRepository(tmp_path / "contract.sqlite3")
    await impl.open()
    try:
        yield impl
    finally:
        await impl.close()


@pytest_asyncio.fixture(loop_scope="session")
async def cassandra_store(cassandra_keyspace: str) -> AsyncIterator[PredictionRepository]:
    impl = CassandraRepository(cassandra_settings(cassandra_keyspace))
    await impl.open()
    try:
        for table in ("predictions", "predictions_by_day", "prediction_days", "prediction_images"):
            await run(impl._session, f"TRUNCATE {cassandra_keyspace}.{table}")
        yield impl
    finally:
        await impl.close()


@pytest.fixture(
    params=[
        pytest.param("sqlite_store", id="sqlite"),
        pytest.param("cassandra_store", id="cassandra", marks=pytest.mark.cassandra),
    ]
)
def store(request: pytest.FixtureRequest) -> PredictionRepository:
    """Each store in turn; only the Cassandra one needs the node (and Java):
    ``pytest -m "not cassandra" tests/store`` runs the SQLite half alone."""
    impl: PredictionRepository = request.getfixturevalue(request.param)
    return impl


async def all_pages(store: PredictionRepository, **filters: object) -> list[PredictionRecord]:
    seen: list[PredictionRecord] = []
    before = None
    for _ in range(1000):
        page = await store.history(HistoryQuery(before=before, **filters))  # type: ignore[arg-type]
        seen += page.items
        if page.next_before is None:
            return seen
        before = page.next_before
    raise AssertionError("history never ended")


class TestInsertAndGet:
    async def test_round_trip_keeps_every_field(self, store: PredictionRepository) -> None:
        rec = record(3)
        image = bytes(range(256)) * 4000  # about 1 MB with every byte value
        await store.insert(rec, image)
        got = await store.get(rec.id)
        assert got == rec
        stored = await store.get_image(rec.id)
        assert stored is not None
        assert stored.content_type == "image/png"
        assert stored.data == image

    async def test_unknown_id_is_none(self, store: PredictionRepository) -> None:
        assert await store.get(new_id()) is None
        assert await store.get_image(new_id()) is None

    async def test_concurrent_inserts_are_all_kept(self, store: PredictionRepository) -> None:
        records = [record(i % 10) for i in range(60)]
        await asyncio.gather(*(store.insert(r, b"img") for r in records))
        found = await asyncio.gather(*(store.get(r.id) for r in records))
        assert found == records


class TestHistory:
    async def test_newest_first_and_every_item_once(self, store: PredictionRepository) -> None:
        records = [record(i % 10) for i in range(23)]
        for r in records:
            await store.insert(r, b"img")
        pages = []
        before = None
        while True:
            page = await store.history(HistoryQuery(limit=5, before=before))
            assert len(page.items) <= 5
            pages.append(page.items)
            if page.next_before is None:
                break
            before = page.next_before
        assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
        listed = [r.id for p in pages for r in p]
        assert listed == [r.id for r in reversed(records)]

    async def test_exact_multiple_of_limit_ends_cleanly(self, store: PredictionRepository) -> None:
        for i in range(4):
            await store.insert(record(i), b"img")
        first = await store.history(HistoryQuery(limit=2))
        second = await store.history(HistoryQuery(limit=2, before=first.next_before))
        assert len(second.items) == 2
        assert second.next_before is None

    async def test_paging_is_stable_while_uploads_arrive(self, store: PredictionRepository) -> None:
        originals = [record(i % 10) for i in range(30)]
        for r in originals:
            await store.insert(r, b"img")
        listed: list[uuid.UUID] = []
        before = None
        while True:
            page, *_ = await asyncio.gather(
                store.history(HistoryQuery(limit=7, before=before)),
                *(store.insert(record(5), b"new") for _ in range(5)),
            )
            listed += [r.id for r in page.items]
            if page.next_before is None:
                break
            before = page.next_before
        # The first page may include uploads that arrived with it; after it, nothing new, and
        # nothing skipped or repeated.
        assert len(listed) == len(set(listed))
        expected = [r.id for r in reversed(originals)]
        assert [i for i in listed if i in set(expected)] == expected
        assert listed[-len(expected) :] == expected

    async def test_steps_across_day_partitions(self, store: PredictionRepository) -> None:
        now = datetime.now(UTC)
        moments = [now - timedelta(days=d, minutes=m) for d in (0, 1, 9, 40) for m in (1, 2, 3)]
        records = [record(3, prediction_id=id_at(t)) for t in moments]
        for r in records:
            await store.insert(r, b"img")
        listed = await all_pages(store, limit=2)
        assert [r.id for r in listed] == [r.id for r in records]  # moments are newest first

    async def test_filters_by_digit_and_label(self, store: PredictionRepository) -> None:
        records = [record(i % 3) for i in range(18)]
        for r in records:
            await store.insert(r, b"img")
        labeled = records[::4]
        for r in labeled:
            await store.set_label(r.id, 9, datetime.now(UTC))
        twos = await all_pages(store, limit=4, digit=2)
        assert [r.id for r in twos] == [r.id for r in reversed(records) if r.digit == 2]
        yes = await all_pages(store, limit=3, labeled=True)
        assert {r.id for r in yes} == {r.id for r in labeled}
        assert all(r.label == 9 for r in yes)
        no = await all_pages(store, limit=5, labeled=False)
        assert {r.id for r in no} == {r.id for r in records} - {r.id for r in labeled}
        both = await all_pages(store, limit=5, digit=0, labeled=True)
        assert {r.id for r in both} == {r.id for r in labeled if r.digit == 0}


class TestLabel:
    async def test_label_and_time_are_kept(self, store: PredictionRepository) -> None:
        rec = record(1)
        await store.insert(rec, b"img")
        at = datetime(2026, 11, 24, 9, 30, 0, 123000, tzinfo=UTC)
        updated = await store.set_label(rec.id, 7, at)
        assert updated is not None
        assert (updated.label, updated.labeled_at) == (7, at)
        assert (await store.get(rec.id)) == updated
        listed = await store.history(HistoryQuery(limit=5))
        assert listed.items[0].label == 7

    async def test_relabel_replaces(self, store: PredictionRepository) -> None:
        rec = record(1)
        await store.insert(rec, b"img")
        await store.set_label(rec.id, 7, datetime.now(UTC))
        updated = await store.set_label(rec.id, 4, datetime.now(UTC))
        assert updated is not None
        assert updated.label == 4

    async def test_unknown_id(self, store: PredictionRepository) -> None:
        assert await store.set_label(new_id(), 3, datetime.now(UTC)) is None
        assert await all_pages(store, limit=5) == []


class TestDelete:
    async def test_delete_removes_everywhere(self, store: PredictionRepository) -> None:
        keep, gone = record(2), record(8)
        await store.insert(keep, b"keep")
        await store.insert(gone, b"gone")
        assert await store.delete(gone.id) is True
        assert await store.get(gone.id) is None
        assert await store.get_image(gone.id) is None
        assert [r.id for r in await all_pages(store, limit=10)] == [keep.id]
        assert await store.delete(gone.id) is False

    async def test_ping(self, store: PredictionRepository) -> None:
        await store.ping()
