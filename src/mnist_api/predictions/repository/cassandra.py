"""The Cassandra store, through the async driver acsylla.

One cluster and one session per process, created inside the running event loop (in the app's
lifespan); statements prepared once at start-up, with explicit column lists. Every call is
async. The data model (see ``cql/README.md``):

- ``predictions``: by id, with the upload and the model input;
- ``prediction_images``: the original uploads, by id;
- the history, partitioned as ``layout.DayLayout`` says: ``predictions_by_day``, one partition
  per UTC day, newest first, and ``prediction_days``, which days have predictions.

An insert first writes the upload to ``prediction_images``, then the three small rows in one
logged batch, so the prediction appears in all of its tables or (once the batch log has
replayed) in none. Uploads are kept out of the batch because Cassandra refuses batches over
``batch_size_fail_threshold`` (50 KiB by default). If the batch fails, the upload is deleted again;
an upload left behind by a failure of that delete too is unreachable: every read of an image
checks its prediction first.
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import datetime
from typing import Any

import acsylla
from acsylla import errors as cass_errors

from mnist_api.kernel.cassandra import cass_error, connect, disconnect
from mnist_api.kernel.database import StoreError
from mnist_api.kernel.migrations import Migrator, default_cql_dir, load_migrations
from mnist_api.kernel.settings import Settings
from mnist_api.predictions.records import (
    HistoryPage,
    HistoryQuery,
    ImageMeta,
    PredictionRecord,
    StoredImage,
)
from mnist_api.predictions.repository.layout import DayLayout

# The record and its rows meet here and nowhere else: the columns in order, and the two mappings.
RECORD_COLUMNS = (
    "digit", "confidence", "probabilities", "model_version", "created_at", "content_type",
    "width", "height", "size_bytes", "sha256", "input_pixels", "label", "labeled_at",
)  # fmt: skip
FIELDS = ", ".join(RECORD_COLUMNS)
# A new prediction has no label: leaving the label columns out writes no null tombstones.
INSERT_COLUMNS = RECORD_COLUMNS[:-2]
INSERT_FIELDS = ", ".join(INSERT_COLUMNS)
ROW_VALUES = ", ".join("?" * (len(INSERT_COLUMNS) + 1))  # the id and the insert columns
FILTERED_CHUNK = 200  # rows read per query while filtering
SCAN_BUDGET = 5000  # rows a filtered history request may read before it returns a short page


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
    """The record of a row with ``id`` and ``RECORD_COLUMNS``."""
    return PredictionRecord(
        id=uuid.UUID(str(row["id"])),
        digit=int(row["digit"]),
        confidence=float(row["confidence"]),
        probabilities=tuple(float(p) for p in row["probabilities"]),
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
        label=int(row["label"]) if row["label"] is not None else None,
        labeled_at=row["labeled_at"],
    )


def _matches(record: PredictionRecord, query: HistoryQuery) -> bool:
    if query.digit is not None and record.digit != query.digit:
        return False
    return query.labeled is None or (record.label is not None) == query.labeled


class CassandraRepository:
    name = "cassandra"

    def __init__(self, settings: Settings, layout: DayLayout | None = None) -> None:
        self.settings = settings
        self.keyspace = settings.cassandra_keyspace
        self.layout = layout or DayLayout()
        hosts = ",".join(settings.cassandra_contact_points)
        self.location = f"keyspace {self.keyspace} at {hosts}:{settings.cassandra_port}"
        self._cluster: Any = None
        self._session: Any = None
        self._ps: dict[str, Any] = {}

    async def open(self) -> None:
        self._cluster, self._session = await connect(
            self.settings, keyspace=None, wait_s=self.settings.cassandra_startup_timeout_s
        )
        try:
            migrations = load_migrations(self.settings.cql_dir or default_cql_dir())
            await Migrator(self.settings, self._session, migrations).ensure_current()
            await self._prepare()
        except BaseException:
            await self.close()
            raise

    async def _prepare(self) -> None:
        ks = self.keyspace
        history, index = self.layout.history_table, self.layout.index_table
        statements = {
            "insert": f"INSERT INTO {ks}.predictions (id, {INSERT_FIELDS}) VALUES ({ROW_VALUES})",
            "insert_image": f"INSERT INTO {ks}.prediction_images (id, content_type, data) "
            "VALUES (?, ?, ?)",
            "insert_day": f"INSERT INTO {ks}.{history} (day, id, {INSERT_FIELDS}) "
            f"VALUES (?, {ROW_VALUES})",
            "insert_bucket": f"INSERT INTO {ks}.{index} (shard, day) VALUES (0, ?)",
            "get": f"SELECT id, {FIELDS} FROM {ks}.predictions WHERE id = ?",
            "get_image": f"SELECT content_type, data FROM {ks}.prediction_images WHERE id = ?",
            "days": f"SELECT day FROM {ks}.{index} WHERE shard = 0 AND day <= ? LIMIT ?",
            "day_page": f"SELECT id, {FIELDS} FROM {ks}.{history} WHERE day = ? LIMIT ?",
            "day_page_before": f"SELECT id, {FIELDS} FROM {ks}.{history} "
            "WHERE day = ? AND id < ? LIMIT ?",
            "label": f"UPDATE {ks}.predictions SET label = ?, labeled_at = ? WHERE id = ?",
            "label_day": f"UPDATE {ks}.{history} SET label = ?, labeled_at = ? "
            "WHERE day = ? AND id = ?",
            "delete": f"DELETE FROM {ks}.predictions WHERE id = ?",
            "delete_image": f"DELETE FROM {ks}.prediction_images WHERE id = ?",
            "delete_day": f"DELETE FROM {ks}.{history} WHERE day = ? AND id = ?",
            "ping": "SELECT release_version FROM system.local",
        }
        for key, cql in statements.items():
            try:
                self._ps[key] = await self._session.create_prepared(cql)
            except cass_errors.CassException as exc:
                raise cass_error(exc, f"could not prepare {key}") from exc

    async def close(self) -> None:
        cluster, session = self._cluster, self._session
        self._cluster = self._session = None
        self._ps.clear()
        await disconnect(cluster, session)

    def _bind(self, key: str, params: list[Any]) -> Any:
        if self._session is None:
            raise StoreError("the Cassandra store is not open")
        return self._ps[key].bind(params)

    async def _execute(self, key: str, params: list[Any]) -> Any:
        statement = self._bind(key, params)
        try:
            return await self._session.execute(statement)
        except cass_errors.CassException as exc:
            raise cass_error(exc, f"{key} failed") from exc

    async def _batch(self, statements: list[tuple[str, list[Any]]]) -> None:
        batch = acsylla.create_batch_logged()
        for key, params in statements:
            batch.add_statement(self._bind(key, params))
        try:
            await self._session.execute_batch(batch)
        except cass_errors.CassException as exc:
            raise cass_error(exc, "batch failed") from exc

    async def ping(self) -> None:
        await self._execute("ping", [])

    async def insert(self, record: PredictionRecord, image: bytes) -> None:
        fields = _values(record)
        day = self.layout.partition(record.id)
        await self._execute("insert_image", [record.id, record.image.content_type, image])
        try:
            await self._batch(
                [
                    ("insert", [record.id, *fields]),
                    ("insert_day", [day, record.id, *fields]),
                    ("insert_bucket", [day]),
                ]
            )
        except StoreError:
            with contextlib.suppress(StoreError):
                await self._execute("delete_image", [record.id])
            raise

    async def get(self, prediction_id: uuid.UUID) -> PredictionRecord | None:
        row = (await self._execute("get", [prediction_id])).first()
        if row is None:
            return None
        data = row.as_dict()
        return _record(data) if data["digit"] is not None else None

    async def get_image(self, prediction_id: uuid.UUID) -> StoredImage | None:
        if await self.get(prediction_id) is None:
            return None
        row = (await self._execute("get_image", [prediction_id])).first()
        if row is None or row.column_value("data") is None:
            return None
        return StoredImage(str(row.column_value("content_type")), bytes(row.column_value("data")))

    async def _days(self, newest: int) -> list[int]:
        result = await self._execute("days", [newest, self.layout.index_chunk])
        return [int(row.column_value("day")) for row in result]

    async def history(self, query: HistoryQuery) -> HistoryPage:
        """Step back through day partitions with keyset bounds; never driver paging state."""
        filtered = query.digit is not None or query.labeled is not None
        chunk = FILTERED_CHUNK if filtered else query.limit + 1
        before = query.before
        newest_day = self.layout.first_partition(before)
        cursor_day = self.layout.partition(before) if before is not None else None
        matches: list[PredictionRecord] = []
        scanned = 0
        last_seen: uuid.UUID | None = None
        while True:
            days = await self._days(newest_day)
            if not days:
                return HistoryPage(matches[: query.limit], None)
            for day in days:
                bound = before if day == cursor_day else None
                while True:
                    if bound is None:
                        result = await self._execute("day_page", [day, chunk])
                    else:
                        result = await self._execute("day_page_before", [day, bound, chunk])
                    rows = [row.as_dict() for row in result]
                    for row in rows:
                        if row["digit"] is None:  # a label written after a concurrent delete
                            continue
                        record = _record(row)
                        scanned += 1
                        last_seen = record.id
                        if _matches(record, query):
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
            newest_day = days[-1] - 1

    async def set_label(
        self, prediction_id: uuid.UUID, label: int, labeled_at: datetime
    ) -> PredictionRecord | None:
        if await self.get(prediction_id) is None:
            return None
        await self._batch(
            [
                ("label", [label, labeled_at, prediction_id]),
                (
                    "label_day",
                    [label, labeled_at, self.layout.partition(prediction_id), prediction_id],
                ),
            ]
        )
        return await self.get(prediction_id)

    async def delete(self, prediction_id: uuid.UUID) -> bool:
        if await self.get(prediction_id) is None:
            return False
        day = self.layout.partition(prediction_id)
        await self._batch([("delete", [prediction_id]), ("delete_day", [day, prediction_id])])
        await self._execute("delete_image", [prediction_id])
        return True
