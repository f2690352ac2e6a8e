"""Predictions in Cassandra, through the async driver acsylla (``kernel.databases`` holds the
session). Statements are prepared once at start-up, with explicit column lists. The data model
(see ``cql/README.md``):

- ``predictions``: by id, with the model input, the owner, and where its history rows are;
- ``prediction_images``: the original uploads, by id;
- ``history``: every prediction twice, in its owner's partitions and in the global ones, laid out
  as ``layout.ShardedLayout`` says, with the indexes ``history_buckets`` and ``history_months``;
- ``review_queue``: the flagged predictions not yet labelled, by owner and UTC day, least
  confident first.

An insert first records the index entries (once per bucket and process) and writes the upload to
``prediction_images``, then the three small rows in one logged batch, so the prediction appears in
all of its tables or (once the batch log has replayed) in none; if the batch times out, the same
rows are written one by one (``CassandraDatabase.execute_atomically``). Uploads are kept out of
the batch because Cassandra refuses batches over ``batch_size_fail_threshold`` (50 KiB by
default). If the rows cannot be written, everything is deleted again; an upload left behind by a
failure of that delete too is unreachable: every read of an image checks its prediction first.

With a retention period every write carries a TTL, uploads included; a label keeps the time the
prediction has left.
"""

from __future__ import annotations

import asyncio
import heapq
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from mnist_api.kernel.database import StoreError
from mnist_api.kernel.databases import CassandraDatabase, Prepared
from mnist_api.kernel.identity import ANONYMOUS_OWNER
from mnist_api.predictions.records import (
    HistoryPage,
    HistoryQuery,
    ImageMeta,
    LabelledQuery,
    Owner,
    PredictionRecord,
    ReviewPage,
    ReviewQuery,
    StoredImage,
)
from mnist_api.predictions.repository.layout import (
    GLOBAL_LISTING,
    Placement,
    ShardedLayout,
    month_of,
    order_key,
    seconds_of,
)

# The record and its rows meet here and nowhere else: the columns in order, and the two mappings.
# ``probs`` is a frozen list, one cell: a statement that runs twice (speculative execution, a
# retry) writes the same ten numbers, where a non-frozen list would keep the elements of both.
RECORD_COLUMNS = (
    "digit", "confidence", "probs", "model_version", "created_at", "content_type",
    "width", "height", "size_bytes", "sha256", "input_pixels", "label", "labeled_at",
)  # fmt: skip
FIELDS = ", ".join(RECORD_COLUMNS)
# A new prediction has no label: leaving the label columns out writes no null tombstones.
INSERT_COLUMNS = RECORD_COLUMNS[:-2]
INSERT_FIELDS = ", ".join(INSERT_COLUMNS)
MARKS = ", ".join("?" * len(INSERT_COLUMNS))
PLACES = "owner, owner_bucket, owner_shard, global_bucket, global_shard"
FILTERED_CHUNK = 200  # rows read per query while filtering
SCAN_BUDGET = 5000  # rows a filtered history request may read before it returns a short page
INDEX_CACHE = 100_000  # index entries a process remembers having written
EXPORT_CHUNK = 1000  # rows read per query by an export, which scans the predictions by token
MIN_TOKEN = -(2**63)  # Murmur3's tokens lie above this
DAY_S = 86_400


def _day(moment: datetime) -> int:
    """The UTC day number (days since 1970-01-01) of a moment: the review queue's partition."""
    return int(moment.timestamp()) // DAY_S


def _values(record: PredictionRecord) -> list[Any]:
    """The values of ``INSERT_COLUMNS`` for a new record."""
    return [
        record.digit,
        record.confidence,
        list(record.probabilities),
        record.model_version,
        record.created_at,
        record.image.content_type,
        record.image.width,
        record.image.height,
        record.image.size_bytes,
        record.image.sha256,
        record.input_pixels,
    ]


def _record(row: dict[str, Any]) -> PredictionRecord:
    """The record of a row with ``id``, ``owner`` and ``RECORD_COLUMNS``."""
    return PredictionRecord(
        id=uuid.UUID(str(row["id"])),
        digit=int(row["digit"]),
        confidence=float(row["confidence"]),
        probabilities=tuple(float(p) for p in row["probs"]),
        model_version=str(row["model_version"]),
        created_at=row["created_at"],
        image=ImageMeta(
            content_type=str(row["content_type"]),
            width=int(row["width"]),
            height=int(row["height"]),
            size_bytes=int(row["size_bytes"]),
            sha256=str(row["sha256"]),
        ),
        input_pixels=bytes(row["input_pixels"]),
        owner=str(row["owner"] or ANONYMOUS_OWNER),
        label=int(row["label"]) if row["label"] is not None else None,
        labeled_at=row["labeled_at"],
    )


def _matches(record: PredictionRecord, query: HistoryQuery) -> bool:
    if query.digit is not None and record.digit != query.digit:
        return False
    return query.labeled is None or (record.label is not None) == query.labeled


class _Stored:
    """A prediction's row in ``predictions``: the record, where its history rows are, and the
    time it has left (0: no TTL)."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.record = _record(row)
        self.owner = self.record.owner
        self.own = (self.owner, int(row["owner_bucket"]), int(row["owner_shard"]))
        self.all = (GLOBAL_LISTING, int(row["global_bucket"]), int(row["global_shard"]))
        self.ttl = int(row["ttl"] or 0)


class CassandraRepository:
    name = "cassandra"

    def __init__(
        self,
        database: CassandraDatabase,
        *,
        retention_s: int | None = None,
        layout: ShardedLayout | None = None,
        review_days: int = 7,
    ) -> None:
        self._db = database
        self.location = database.location
        self.retention_s = retention_s
        self.review_days = review_days
        self.layout = layout or ShardedLayout()
        self._ps: dict[str, Prepared] = {}
        self._indexed: set[tuple[str, str, int]] = set()

    async def open(self) -> None:
        ks = self._db.keyspace
        history = f"{ks}.{self.layout.history_table}"
        buckets = f"{ks}.{self.layout.buckets_table}"
        months = f"{ks}.{self.layout.months_table}"
        partition = "listing = ? AND bucket = ? AND shard = ?"
        self._ps = await self._db.prepare(
            {
                "insert": f"INSERT INTO {ks}.predictions (id, {INSERT_FIELDS}, {PLACES}) "
                f"VALUES (?, {MARKS}, ?, ?, ?, ?, ?) USING TTL ?",
                "insert_image": f"INSERT INTO {ks}.prediction_images (id, content_type, data) "
                "VALUES (?, ?, ?) USING TTL ?",
                "insert_history": f"INSERT INTO {history} (listing, bucket, shard, id, owner, "
                f"{INSERT_FIELDS}) VALUES (?, ?, ?, ?, ?, {MARKS}) USING TTL ?",
                "insert_bucket": f"INSERT INTO {buckets} (listing, month, bucket, shards) "
                "VALUES (?, ?, ?, ?) USING TTL ?",
                "insert_month": f"INSERT INTO {months} (listing, month) VALUES (?, ?) USING TTL ?",
                "get": f"SELECT id, {FIELDS}, {PLACES}, TTL(digit) AS ttl "
                f"FROM {ks}.predictions WHERE id = ?",
                "get_image": f"SELECT content_type, data FROM {ks}.prediction_images WHERE id = ?",
                "scan": f"SELECT token(id) AS t, id, {FIELDS}, owner FROM {ks}.predictions "
                "WHERE token(id) > ? LIMIT ?",
                "months": f"SELECT month FROM {months} WHERE listing = ? LIMIT ?",
                "months_before": f"SELECT month FROM {months} "
                "WHERE listing = ? AND month < ? LIMIT ?",
                "buckets": f"SELECT bucket, shards FROM {buckets} WHERE listing = ? AND month = ? "
                "LIMIT ?",
                "buckets_upto": f"SELECT bucket, shards FROM {buckets} "
                "WHERE listing = ? AND month = ? AND bucket <= ? LIMIT ?",
                "buckets_before": f"SELECT bucket, shards FROM {buckets} "
                "WHERE listing = ? AND month = ? AND bucket < ? LIMIT ?",
                "page": f"SELECT id, owner, {FIELDS} FROM {history} WHERE {partition} LIMIT ?",
                "page_before": f"SELECT id, owner, {FIELDS} FROM {history} "
                f"WHERE {partition} AND id < ? LIMIT ?",
                "label": f"UPDATE {ks}.predictions USING TTL ? SET label = ?, labeled_at = ? "
                "WHERE id = ?",
                "label_history": f"UPDATE {history} USING TTL ? SET label = ?, labeled_at = ? "
                f"WHERE {partition} AND id = ?",
                "delete": f"DELETE FROM {ks}.predictions WHERE id = ?",
                "delete_image": f"DELETE FROM {ks}.prediction_images WHERE id = ?",
                "delete_history": f"DELETE FROM {history} WHERE {partition} AND id = ?",
                "insert_review": f"INSERT INTO {ks}.review_queue (owner, day, confidence, id) "
                "VALUES (?, ?, ?, ?) USING TTL ?",
                "delete_review": f"DELETE FROM {ks}.review_queue "
                "WHERE owner = ? AND day = ? AND confidence = ? AND id = ?",
                "review": f"SELECT confidence, id FROM {ks}.review_queue "
                "WHERE owner = ? AND day = ? LIMIT ?",
                "review_after": f"SELECT confidence, id FROM {ks}.review_queue "
                "WHERE owner = ? AND day = ? AND (confidence, id) > (?, ?) LIMIT ?",
            }
        )

    async def close(self) -> None:
        self._ps.clear()

    async def _execute(self, key: str, params: list[Any]) -> Any:
        return await self._db.execute(self._ps[key], params, action=key)

    async def _batch(self, action: str, statements: list[tuple[str, list[Any]]]) -> None:
        prepared = [(self._ps[key], params) for key, params in statements]
        await self._db.execute_atomically(prepared, action=action)

    async def ping(self) -> None:
        await self._db.ping()

    # Writes.

    def _ttl(self) -> int:
        return self.retention_s or 0

    def _review_ttl(self) -> int:
        """A queue row lives the review window, or the retention period when shorter."""
        window = self.review_days * DAY_S
        return min(window, self.retention_s) if self.retention_s else window

    @staticmethod
    def _queued(record: PredictionRecord) -> list[Any]:
        """The key of a prediction's row in ``review_queue``."""
        return [record.owner, _day(record.created_at), record.confidence, record.id]

    def _expired(self, record: PredictionRecord) -> bool:
        """Past the retention period: invisible at once, even a row written before retention
        was set (which carries no TTL and stays on disk until it is deleted)."""
        if self.retention_s is None:
            return False
        return record.created_at < datetime.now(UTC) - timedelta(seconds=self.retention_s)

    async def _index(self, placement: Placement) -> None:
        """Record the bucket and its month in the index, unless this process already did."""
        bucket_ttl, month_ttl = self.layout.index_ttls(placement, self.retention_s)
        writes = []
        month = placement.month
        if ("m", placement.listing, month) not in self._indexed:
            writes.append(("insert_month", [placement.listing, month, month_ttl], ("m", month)))
        if ("b", placement.listing, placement.bucket) not in self._indexed:
            params = [placement.listing, month, placement.bucket, placement.shards, bucket_ttl]
            writes.append(("insert_bucket", params, ("b", placement.bucket)))
        if not writes:
            return
        await asyncio.gather(*(self._execute(key, params) for key, params, _ in writes))
        if len(self._indexed) > INDEX_CACHE:
            self._indexed.clear()
        for _, _, (kind, value) in writes:
            self._indexed.add((kind, placement.listing, value))

    async def insert(self, record: PredictionRecord, image: bytes, owner: Owner) -> None:
        own, everyone = self.layout.placements(owner, record.id)
        await asyncio.gather(self._index(own), self._index(everyone))
        ttl = self._ttl()
        fields = _values(record)
        places = [record.owner, own.bucket, own.shard, everyone.bucket, everyone.shard]
        await self._execute("insert_image", [record.id, record.image.content_type, image, ttl])
        rows: list[tuple[str, list[Any]]] = [
            ("insert", [record.id, *fields, *places, ttl]),
            ("insert_history", [*own.partition, record.id, record.owner, *fields, ttl]),
            ("insert_history", [*everyone.partition, record.id, record.owner, *fields, ttl]),
        ]
        if record.flagged:
            rows.append(("insert_review", [*self._queued(record), self._review_ttl()]))
        try:
            await self._batch("insert", rows)
        except StoreError:
            # Refused: take back whatever may have landed (on the replicas that can be reached,
            # which are those that took any of it), so nothing half-stored shows up later.
            undo: list[tuple[str, list[Any]]] = [
                ("delete", [record.id]),
                ("delete_history", [*own.partition, record.id]),
                ("delete_history", [*everyone.partition, record.id]),
                ("delete_image", [record.id]),
                ("delete_review", self._queued(record)),
            ]
            await asyncio.gather(
                *(self._execute(key, params) for key, params in undo), return_exceptions=True
            )
            raise

    # Reads of one prediction.

    async def _stored(self, prediction_id: uuid.UUID, owner: str | None) -> _Stored | None:
        row = (await self._execute("get", [prediction_id])).first()
        if row is None:
            return None
        data = row.as_dict()
        if data["digit"] is None:  # only a label written after a concurrent delete is left
            return None
        stored = _Stored(data)
        if owner is not None and stored.owner != owner:
            return None  # another owner's: answered as if it did not exist
        if self._expired(stored.record):
            return None
        return stored

    async def get(self, prediction_id: uuid.UUID, owner: str | None) -> PredictionRecord | None:
        stored = await self._stored(prediction_id, owner)
        return stored.record if stored is not None else None

    async def get_image(self, prediction_id: uuid.UUID, owner: str | None) -> StoredImage | None:
        if await self._stored(prediction_id, owner) is None:
            return None
        row = (await self._execute("get_image", [prediction_id])).first()
        if row is None or row.column_value("data") is None:
            return None
        return StoredImage(str(row.column_value("content_type")), bytes(row.column_value("data")))

    # The history.

    async def _months(self, listing: str, before: int | None) -> list[int]:
        chunk = self.layout.index_chunk
        if before is None:
            result = await self._execute("months", [listing, chunk])
        else:
            result = await self._execute("months_before", [listing, before, chunk])
        return [int(row.column_value("month")) for row in result]

    async def _buckets_of(
        self, listing: str, month: int, *, upto: int | None = None, before: int | None = None
    ) -> list[tuple[int, int]]:
        chunk = self.layout.index_chunk
        if before is not None:
            result = await self._execute("buckets_before", [listing, month, before, chunk])
        elif upto is not None:
            result = await self._execute("buckets_upto", [listing, month, upto, chunk])
        else:
            result = await self._execute("buckets", [listing, month, chunk])
        return [
            (int(row.column_value("bucket")), int(row.column_value("shards"))) for row in result
        ]

    async def _buckets(
        self, listing: str, cursor: uuid.UUID | None
    ) -> AsyncIterator[tuple[int, int]]:
        """The non-empty buckets (start, shards) of a listing (an owner's, or the global one) at
        or before the cursor's time, newest first (all of them for the first page)."""
        if cursor is None:
            months = await self._months(listing, None)
            upto = None
        else:
            seconds = seconds_of(cursor)
            months = [month_of(seconds)]
            upto = seconds
        while months:
            for month in months:
                found = await self._buckets_of(listing, month, upto=upto)
                while found:
                    for entry in found:
                        yield entry
                    if len(found) < self.layout.index_chunk:
                        break
                    found = await self._buckets_of(listing, month, before=found[-1][0])
                upto = None
            months = await self._months(listing, months[-1])

    async def _read_bucket(
        self, listing: str, bucket: int, shards: int, bound: uuid.UUID | None, chunk: int
    ) -> list[dict[str, Any]]:
        """The next ``chunk`` rows of a bucket below ``bound``, its shards read at once and
        merged newest first."""

        async def shard_rows(shard: int) -> list[dict[str, Any]]:
            if bound is None:
                result = await self._execute("page", [listing, bucket, shard, chunk])
            else:
                result = await self._execute("page_before", [listing, bucket, shard, bound, chunk])
            return [row.as_dict() for row in result]

        if shards == 1:
            return await shard_rows(0)
        parts = await asyncio.gather(*(shard_rows(shard) for shard in range(shards)))
        keyed = ([(order_key(uuid.UUID(str(row["id"]))), row) for row in part] for part in parts)
        merged = heapq.merge(*keyed, key=lambda item: item[0], reverse=True)
        return [row for _, row in merged][:chunk]

    async def history(self, query: HistoryQuery) -> HistoryPage:
        """Step back through the owner's (or the global) buckets with keyset bounds; never
        driver paging state."""
        listing = query.owner if query.owner is not None else GLOBAL_LISTING
        filtered = query.digit is not None or query.labeled is not None
        chunk = FILTERED_CHUNK if filtered else query.limit + 1
        matches: list[PredictionRecord] = []
        scanned = 0
        last_seen: uuid.UUID | None = None
        async for bucket, shards in self._buckets(listing, query.before):
            bound = query.before
            while True:
                rows = await self._read_bucket(listing, bucket, shards, bound, chunk)
                for row in rows:
                    if row["digit"] is None:  # a label written after a concurrent delete
                        continue
                    record = _record(row)
                    scanned += 1
                    last_seen = record.id
                    if _matches(record, query) and not self._expired(record):
                        matches.append(record)
                        if len(matches) > query.limit:
                            return HistoryPage(matches[: query.limit], matches[-2].id)
                if rows:
                    bound = uuid.UUID(str(rows[-1]["id"]))
                if len(rows) < chunk:
                    break
                if scanned >= SCAN_BUDGET and last_seen is not None:
                    # A rare filter: return what we have and let the client continue.
                    return HistoryPage(matches, last_seen)
        return HistoryPage(matches[: query.limit], None)

    # The review queue.

    async def review(self, query: ReviewQuery) -> ReviewPage:
        """The owner's partitions of the window's days, each read from the cursor on with
        ``LIMIT`` the page, merged least confident first; then the predictions, by id."""
        first, last = _day(query.since), _day(datetime.now(UTC))
        chunk = query.limit + 1

        async def day_rows(day: int) -> list[tuple[float, uuid.UUID]]:
            if query.after is None:
                result = await self._execute("review", [query.owner, day, chunk])
            else:
                confidence, after = query.after
                params = [query.owner, day, confidence, after, chunk]
                result = await self._execute("review_after", params)
            return [
                (float(row.column_value("confidence")), uuid.UUID(str(row.column_value("id"))))
                for row in result
            ]

        parts = await asyncio.gather(*(day_rows(day) for day in range(first, last + 1)))
        keyed = (
            [((confidence, order_key(pid)), (confidence, pid)) for confidence, pid in part]
            for part in parts
        )
        queued = [entry for _, entry in heapq.merge(*keyed, key=lambda item: item[0])][:chunk]
        records = await asyncio.gather(*(self.get(pid, query.owner) for _, pid in queued))
        items = [
            record
            for record in records[: query.limit]
            if record is not None and record.label is None and record.created_at >= query.since
        ]
        more = len(queued) > query.limit
        return ReviewPage(items, queued[query.limit - 1] if more else None)

    # Changes.

    async def set_label(
        self, prediction_id: uuid.UUID, label: int, labeled_at: datetime, owner: str | None
    ) -> PredictionRecord | None:
        stored = await self._stored(prediction_id, owner)
        if stored is None:
            return None
        values = [stored.ttl, label, labeled_at]
        await self._batch(
            "label",
            [
                ("label", [*values, prediction_id]),
                ("label_history", [*values, *stored.own, prediction_id]),
                ("label_history", [*values, *stored.all, prediction_id]),
                ("delete_review", self._queued(stored.record)),
            ],
        )
        return await self.get(prediction_id, owner)

    async def delete(self, prediction_id: uuid.UUID, owner: str | None) -> bool:
        stored = await self._stored(prediction_id, owner)
        if stored is None:
            return False
        await self._batch(
            "delete",
            [
                ("delete", [prediction_id]),
                ("delete_history", [*stored.own, prediction_id]),
                ("delete_history", [*stored.all, prediction_id]),
                ("delete_review", self._queued(stored.record)),
            ],
        )
        await self._execute("delete_image", [prediction_id])
        return True

    async def labelled(self, query: LabelledQuery) -> AsyncIterator[PredictionRecord]:
        """No table is keyed by label: a scan of ``predictions`` in token order, a chunk per
        query, each continuing after the last token of the one before."""
        after = MIN_TOKEN
        while True:
            result = await self._execute("scan", [after, EXPORT_CHUNK])
            rows = [row.as_dict() for row in result]
            for row in rows:
                record = _record(row)
                if query.admits(record):
                    yield record
            if len(rows) < EXPORT_CHUNK:
                return
            after = int(rows[-1]["t"])
