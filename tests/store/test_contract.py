"""The contract every ``PredictionRepository`` must keep, run against SQLite and a real
Cassandra node alike: round trips, the history's paging (across buckets, months and shards),
labels, deletes, owners who never see each other's predictions, the review queue, and
retention."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio

from mnist_api.kernel.cassandra import run
from mnist_api.kernel.databases import CassandraDatabase
from mnist_api.kernel.sqlite import SqliteDatabase
from mnist_api.predictions.records import (
    UUID_EPOCH_OFFSET,
    HistoryQuery,
    ImageMeta,
    LabelledQuery,
    Owner,
    PredictionRecord,
    ReviewQuery,
    id_time,
    new_id,
)
from mnist_api.predictions.repository import PredictionRepository
from mnist_api.predictions.repository import cassandra as cassandra_module
from mnist_api.predictions.repository import sqlite as sqlite_module
from mnist_api.predictions.repository.cassandra import CassandraRepository
from mnist_api.predictions.repository.layout import sizing_for
from mnist_api.predictions.repository.sqlite import SqliteRepository
from tests.fixtures.cassandra import cassandra_settings

pytestmark = pytest.mark.asyncio(loop_scope="session")
ALICE = Owner("a11ce0000001", rate=10.0, burst=20)  # hour buckets, one shard
BOB = Owner("b0b000000002", rate=10.0, burst=20)
HEAVY = Owner("eeee00000003", rate=4000.0, burst=8000)  # minute buckets over several shards
CASSANDRA_TABLES = (
    "predictions", "prediction_images", "history", "history_buckets", "history_months",
    "review_queue",
)  # fmt: skip
Opener = Callable[..., AbstractAsyncContextManager[PredictionRepository]]


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


def record(
    digit: int = 7,
    *,
    prediction_id: uuid.UUID | None = None,
    owner: Owner = ALICE,
    confidence: float = 0.91,
    flagged: bool = False,
) -> PredictionRecord:
    pid = prediction_id or new_id()
    probs = [(1 - confidence) / 9] * 10
    probs[digit] = confidence
    return PredictionRecord(
        id=pid,
        digit=digit,
        confidence=confidence,
        flagged=flagged,
        probabilities=tuple(probs),
        model_version="cnn-test",
        created_at=id_time(pid),
        image=ImageMeta("image/png", 280, 140, 1234, hashlib.sha256(pid.bytes).hexdigest()),
        input_pixels=bytes(range(256)) * 3 + bytes(16),
        owner=owner.id,
    )


async def put(store: PredictionRepository, rec: PredictionRecord, image: bytes = b"img") -> None:
    """Insert as its owner (the owners above, by id)."""
    owner = next(o for o in (ALICE, BOB, HEAVY) if o.id == rec.owner)
    await store.insert(rec, image, owner)


@pytest_asyncio.fixture(loop_scope="session")
async def sqlite_opener(tmp_path: Path) -> AsyncIterator[Opener]:
    @asynccontextmanager
    async def opened(retention_s: int | None = None) -> AsyncIterator[PredictionRepository]:
        database = SqliteDatabase(tmp_path / f"contract-{retention_s}.sqlite3")
        await database.open()
        impl = SqliteRepository(database, retention_s=retention_s)
        await impl.open()
        try:
            yield impl
        finally:
            await impl.close()
            await database.close()

    yield opened


@pytest_asyncio.fixture(loop_scope="session")
async def cassandra_opener(cassandra_keyspace: str) -> AsyncIterator[Opener]:
    @asynccontextmanager
    async def opened(retention_s: int | None = None) -> AsyncIterator[PredictionRepository]:
        database = CassandraDatabase(cassandra_settings(cassandra_keyspace))
        await database.open()
        impl = CassandraRepository(database, retention_s=retention_s)
        await impl.open()
        try:
            for table in CASSANDRA_TABLES:
                await run(database.session, f"TRUNCATE {cassandra_keyspace}.{table}")
            yield impl
        finally:
            await impl.close()
            await database.close()

    yield opened


@pytest.fixture(
    params=[
        pytest.param("sqlite_opener", id="sqlite"),
        pytest.param("cassandra_opener", id="cassandra", marks=pytest.mark.cassandra),
    ]
)
def opener(request: pytest.FixtureRequest) -> Opener:
    """Each store in turn; only the Cassandra one needs the node (and Java):
    ``pytest -m "not cassandra" tests/store`` runs the SQLite half alone."""
    found: Opener = request.getfixturevalue(request.param)
    return found


@pytest_asyncio.fixture(loop_scope="session")
async def store(opener: Opener) -> AsyncIterator[PredictionRepository]:
    async with opener() as impl:
        yield impl


async def all_pages(
    store: PredictionRepository, owner: str | None = None, **filters: object
) -> list[PredictionRecord]:
    seen: list[PredictionRecord] = []
    before = None
    for _ in range(1000):
        query = HistoryQuery(owner=owner, before=before, **filters)  # type: ignore[arg-type]
        page = await store.history(query)
        seen += page.items
        if page.next_before is None:
            return seen
        before = page.next_before
    raise AssertionError("history never ended")


class TestInsertAndGet:
    async def test_round_trip_keeps_every_field(self, store: PredictionRepository) -> None:
        rec = record(3)
        image = bytes(range(256)) * 4000  # about 1 MB with every byte value
        await put(store, rec, image)
        got = await store.get(rec.id, None)
        assert got == rec
        assert await store.get(rec.id, ALICE.id) == rec
        stored = await store.get_image(rec.id, ALICE.id)
        assert stored is not None
        assert stored.content_type == "image/png"
        assert stored.data == image

    async def test_unknown_id_is_none(self, store: PredictionRepository) -> None:
        assert await store.get(new_id(), None) is None
        assert await store.get_image(new_id(), None) is None

    async def test_concurrent_inserts_are_all_kept(self, store: PredictionRepository) -> None:
        records = [record(i % 10) for i in range(60)]
        await asyncio.gather(*(put(store, r) for r in records))
        found = await asyncio.gather(*(store.get(r.id, None) for r in records))
        assert found == records


class TestHistory:
    async def test_newest_first_and_every_item_once(self, store: PredictionRepository) -> None:
        records = [record(i % 10) for i in range(23)]
        for r in records:
            await put(store, r)
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
            await put(store, record(i))
        first = await store.history(HistoryQuery(limit=2))
        second = await store.history(HistoryQuery(limit=2, before=first.next_before))
        assert len(second.items) == 2
        assert second.next_before is None

    @pytest.mark.parametrize("owner", [ALICE, HEAVY], ids=["hour-buckets", "sharded-minutes"])
    @pytest.mark.parametrize("listing", ["own", "global"])
    async def test_paging_is_stable_while_uploads_arrive(
        self, store: PredictionRepository, owner: Owner, listing: str
    ) -> None:
        originals = [record(i % 10, owner=owner) for i in range(30)]
        for r in originals:
            await put(store, r)
        listed: list[uuid.UUID] = []
        before = None
        seen_by = owner.id if listing == "own" else None
        while True:
            page, *_ = await asyncio.gather(
                store.history(HistoryQuery(limit=7, before=before, owner=seen_by)),
                *(put(store, record(5, owner=owner), b"new") for _ in range(5)),
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

    @pytest.mark.parametrize("owner", [ALICE, HEAVY], ids=["hour-buckets", "sharded-minutes"])
    async def test_steps_across_buckets_and_months(
        self, store: PredictionRepository, owner: Owner
    ) -> None:
        now = datetime.now(UTC)
        moments = [
            now - timedelta(days=d, minutes=m, seconds=s)
            for d in (0, 1, 9, 40, 75)
            for m in (1, 2, 90)
            for s in (0, 7)
        ]
        records = [record(3, prediction_id=id_at(t), owner=owner) for t in moments]
        for r in records:
            await put(store, r)
        newest_first = [r.id for r in records]  # moments are newest first
        for limit in (1, 4, 100):
            assert [r.id for r in await all_pages(store, owner.id, limit=limit)] == newest_first
            assert [r.id for r in await all_pages(store, None, limit=limit)] == newest_first

    async def test_shards_of_one_bucket_merge_in_order(self, store: PredictionRepository) -> None:
        assert sizing_for(HEAVY.rate, HEAVY.burst).shards > 1
        records = [record(i % 10, owner=HEAVY) for i in range(60)]
        await asyncio.gather(*(put(store, r) for r in records))
        ordered = sorted(records, key=lambda r: (r.id.time, r.id.bytes), reverse=True)
        for limit in (1, 7, 60):
            listed = await all_pages(store, HEAVY.id, limit=limit)
            assert [r.id.time for r in listed] == [r.id.time for r in ordered]
            assert {r.id for r in listed} == {r.id for r in records}
            assert len(listed) == len(records)

    async def test_filters_by_digit_and_label(self, store: PredictionRepository) -> None:
        records = [record(i % 3) for i in range(18)]
        for r in records:
            await put(store, r)
        labeled = records[::4]
        for r in labeled:
            await store.set_label(r.id, 9, datetime.now(UTC), ALICE.id)
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
        await put(store, rec)
        at = datetime(2026, 11, 24, 9, 30, 0, 123000, tzinfo=UTC)
        updated = await store.set_label(rec.id, 7, at, ALICE.id)
        assert updated is not None
        assert (updated.label, updated.labeled_at) == (7, at)
        assert (await store.get(rec.id, None)) == updated
        for owner in (ALICE.id, None):  # the owner's view and the global one
            listed = await store.history(HistoryQuery(limit=5, owner=owner))
            assert listed.items[0].label == 7

    async def test_relabel_replaces(self, store: PredictionRepository) -> None:
        rec = record(1)
        await put(store, rec)
        await store.set_label(rec.id, 7, datetime.now(UTC), None)
        updated = await store.set_label(rec.id, 4, datetime.now(UTC), None)
        assert updated is not None
        assert updated.label == 4

    async def test_unknown_id(self, store: PredictionRepository) -> None:
        assert await store.set_label(new_id(), 3, datetime.now(UTC), None) is None
        assert await all_pages(store, limit=5) == []


class TestLabelled:
    """What ``mnist-api export-labels`` reads: every labelled prediction once, in chunks."""

    async def test_each_labelled_prediction_once_across_chunks(
        self, store: PredictionRepository, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        module = sqlite_module if isinstance(store, SqliteRepository) else cassandra_module
        monkeypatch.setattr(module, "EXPORT_CHUNK", 7)  # many chunks from a few rows
        records = [record(i % 10, owner=(ALICE, BOB)[i % 2]) for i in range(40)]
        await asyncio.gather(*(put(store, r) for r in records))
        at = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
        labelled = {}
        for i, rec in enumerate(records[:30]):  # ten stay unlabelled
            moment = at + timedelta(minutes=i % 3)  # several share a labelling time
            labelled[rec.id] = await store.set_label(rec.id, (rec.digit + 1) % 10, moment, None)
        found = [r async for r in store.labelled(LabelledQuery())]
        assert sorted(r.id for r in found) == sorted(labelled)
        for got in found:
            assert got == labelled[got.id]  # label, its time, the input, the owner

    async def test_filters_by_owner_and_labelling_time(self, store: PredictionRepository) -> None:
        at = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
        mine, theirs, late = record(1), record(2, owner=BOB), record(3)
        for rec in (mine, theirs, late):
            await put(store, rec)
        await store.set_label(mine.id, 7, at, None)
        await store.set_label(theirs.id, 7, at + timedelta(seconds=1), None)
        await store.set_label(late.id, 7, at + timedelta(hours=1), None)

        async def ids(**query: object) -> set[uuid.UUID]:
            return {r.id async for r in store.labelled(LabelledQuery(**query))}  # type: ignore[arg-type]

        assert await ids(owner=ALICE.id) == {mine.id, late.id}
        assert await ids(owner=BOB.id) == {theirs.id}
        assert await ids(since=at + timedelta(seconds=1)) == {theirs.id, late.id}
        assert await ids(before=at + timedelta(seconds=1)) == {mine.id}
        assert await ids(owner=ALICE.id, since=at, before=at + timedelta(minutes=5)) == {mine.id}


class TestDelete:
    async def test_delete_removes_everywhere(self, store: PredictionRepository) -> None:
        keep, gone = record(2), record(8)
        await put(store, keep, b"keep")
        await put(store, gone, b"gone")
        assert await store.delete(gone.id, ALICE.id) is True
        assert await store.get(gone.id, None) is None
        assert await store.get_image(gone.id, None) is None
        assert [r.id for r in await all_pages(store, limit=10)] == [keep.id]
        assert [r.id for r in await all_pages(store, ALICE.id, limit=10)] == [keep.id]
        assert await store.delete(gone.id, None) is False

    async def test_ping(self, store: PredictionRepository) -> None:
        await store.ping()


class TestOwners:
    async def test_an_owner_never_reaches_another_owners_predictions(
        self, store: PredictionRepository
    ) -> None:
        mine, theirs = record(4, owner=ALICE), record(6, owner=BOB)
        await put(store, mine, b"alice's")
        await put(store, theirs, b"bob's")
        at = datetime.now(UTC)
        assert await store.get(theirs.id, ALICE.id) is None
        assert await store.get_image(theirs.id, ALICE.id) is None
        assert await store.set_label(theirs.id, 1, at, ALICE.id) is None
        assert await store.delete(theirs.id, ALICE.id) is False
        # ... and nothing changed for its owner.
        assert await store.get(theirs.id, BOB.id) == theirs
        image = await store.get_image(theirs.id, BOB.id)
        assert image is not None
        assert image.data == b"bob's"
        assert [r.id for r in await all_pages(store, ALICE.id, limit=5)] == [mine.id]
        assert [r.id for r in await all_pages(store, BOB.id, limit=5)] == [theirs.id]
        assert [r.id for r in await all_pages(store, None, limit=5)] == [theirs.id, mine.id]

    async def test_global_view_interleaves_owners_newest_first(
        self, store: PredictionRepository
    ) -> None:
        owners = [ALICE, BOB, HEAVY]
        records = [record(i % 10, owner=owners[i % 3]) for i in range(30)]
        for r in records:
            await put(store, r)
        listed = await all_pages(store, None, limit=4)
        assert [r.id for r in listed] == [r.id for r in reversed(records)]
        assert [r.owner for r in listed] == [r.owner for r in reversed(records)]
        for owner in owners:
            own = await all_pages(store, owner.id, limit=3)
            assert [r.id for r in own] == [r.id for r in reversed(records) if r.owner == owner.id]


async def whole_queue(
    store: PredictionRepository, owner: Owner = ALICE, limit: int = 7, days: float = 7
) -> list[PredictionRecord]:
    seen: list[PredictionRecord] = []
    since = datetime.now(UTC) - timedelta(days=days)
    after = None
    for _ in range(1000):
        page = await store.review(
            ReviewQuery(owner=owner.id, limit=limit, since=since, after=after)
        )
        seen += page.items
        if page.next_after is None:
            return seen
        after = page.next_after
    raise AssertionError("the review queue never ended")


def unsure(n: int, owner: Owner = ALICE, seed: int = 0) -> list[PredictionRecord]:
    """``n`` flagged predictions with distinct confidences below 0.9, in random order."""
    import random

    levels = random.Random(seed).sample(range(100, 900), n)
    return [record(3, owner=owner, confidence=level / 1000, flagged=True) for level in levels]


class TestReview:
    async def test_least_confident_first_and_each_once(self, store: PredictionRepository) -> None:
        flagged = unsure(23)
        sure = [record(5, confidence=0.99) for _ in range(4)]
        others = unsure(3, owner=BOB, seed=1)
        for rec in [*flagged, *sure, *others]:
            await put(store, rec)
        queue = await whole_queue(store)
        assert [r.id for r in queue] == [r.id for r in sorted(flagged, key=lambda r: r.confidence)]
        assert queue[0] == await store.get(queue[0].id, None)
        assert {r.id for r in await whole_queue(store, BOB)} == {r.id for r in others}

    async def test_a_label_or_a_delete_takes_an_item_off(self, store: PredictionRepository) -> None:
        flagged = sorted(unsure(6, seed=2), key=lambda r: r.confidence)
        for rec in flagged:
            await put(store, rec)
        await store.set_label(flagged[0].id, 4, datetime.now(UTC), ALICE.id)
        await store.set_label(flagged[1].id, 10, datetime.now(UTC), ALICE.id)  # not a digit
        await store.delete(flagged[2].id, ALICE.id)
        assert [r.id for r in await whole_queue(store)] == [r.id for r in flagged[3:]]
        assert (await store.get(flagged[1].id, None)).label == 10  # type: ignore[union-attr]

    async def test_paging_continues_while_items_are_labelled(
        self, store: PredictionRepository
    ) -> None:
        flagged = sorted(unsure(12, seed=3), key=lambda r: r.confidence)
        for rec in flagged:
            await put(store, rec)
        since = datetime.now(UTC) - timedelta(days=7)
        first = await store.review(ReviewQuery(owner=ALICE.id, limit=5, since=since))
        for rec in first.items:  # a person labels the page, then asks for the next one
            await store.set_label(rec.id, 3, datetime.now(UTC), ALICE.id)
        rest = await store.review(
            ReviewQuery(owner=ALICE.id, limit=100, since=since, after=first.next_after)
        )
        assert [r.id for r in first.items + rest.items] == [r.id for r in flagged]
        assert rest.next_after is None
        assert [r.id for r in await whole_queue(store)] == [r.id for r in flagged[5:]]

    async def test_only_the_window(self, store: PredictionRepository) -> None:
        old = record(2, prediction_id=id_at(datetime.now(UTC) - timedelta(days=3)),
                     confidence=0.2, flagged=True)  # fmt: skip
        new = record(2, confidence=0.3, flagged=True)
        for rec in (old, new):
            await put(store, rec)
        assert [r.id for r in await whole_queue(store, days=2)] == [new.id]
        assert [r.id for r in await whole_queue(store, days=4)] == [old.id, new.id]


class TestRetention:
    async def test_expired_predictions_disappear(self, opener: Opener) -> None:
        async with opener(retention_s=2) as store:
            old = record(5)
            await put(store, old, b"old upload")
            assert await store.get(old.id, None) == old
            await store.set_label(old.id, 3, datetime.now(UTC), None)
            await asyncio.sleep(2.5)
            fresh = record(6)
            await put(store, fresh)
            assert await store.get(old.id, None) is None
            assert await store.get_image(old.id, None) is None
            assert await store.set_label(old.id, 4, datetime.now(UTC), None) is None
            assert await store.delete(old.id, None) is False
            for owner in (None, ALICE.id):
                assert [r.id for r in await all_pages(store, owner, limit=5)] == [fresh.id]
            await assert_gone_from_disk(store, old.id)


async def assert_gone_from_disk(store: PredictionRepository, prediction_id: uuid.UUID) -> None:
    """Not only invisible: gone. SQLite deletes expired rows when it purges; in Cassandra every
    cell carried the TTL, the upload and the label included."""
    if isinstance(store, SqliteRepository):
        assert await store.purge() >= 1
        count = await store._db.run(
            lambda c: c.execute(
                "SELECT COUNT(*) FROM predictions WHERE id = ?", (str(prediction_id),)
            ).fetchone()[0]
        )
        assert count == 0
        return
    assert isinstance(store, CassandraRepository)
    session, ks = store._db.session, store._db.keyspace
    for cql in (
        f"SELECT id FROM {ks}.predictions WHERE id = {prediction_id}",
        f"SELECT id FROM {ks}.prediction_images WHERE id = {prediction_id}",
        f"SELECT id FROM {ks}.history WHERE id = {prediction_id} ALLOW FILTERING",
    ):
        assert (await run(session, cql)).first() is None, cql
