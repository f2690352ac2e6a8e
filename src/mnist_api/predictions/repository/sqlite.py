"""The embedded default store: one SQLite file, created with its schema on first start.

SQLite calls block, so every call runs on one dedicated thread that owns the connection; the
event loop only awaits them.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from mnist_api.kernel.database import StoreError, StoreUnavailableError
from mnist_api.predictions.records import (
    HistoryPage,
    HistoryQuery,
    ImageMeta,
    PredictionRecord,
    StoredImage,
    id_ticks,
)

T = TypeVar("T")
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 10.0  # how long a statement waits for another connection's lock
SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    id             TEXT PRIMARY KEY,
    ticks          INTEGER NOT NULL,   -- the UUID's 100-ns timestamp: history order
    digit          INTEGER NOT NULL,
    confidence     REAL NOT NULL,
    probabilities  TEXT NOT NULL,      -- JSON array of 10 numbers
    model_version  TEXT NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    content_type   TEXT NOT NULL,
    width          INTEGER NOT NULL,
    height         INTEGER NOT NULL,
    size_bytes     INTEGER NOT NULL,
    sha256         TEXT NOT NULL,
    input_pixels   BLOB NOT NULL,      -- 28x28 uint8, what the model saw
    image          BLOB NOT NULL,      -- the original upload
    label          INTEGER,
    labeled_at_ms  INTEGER
);
CREATE INDEX IF NOT EXISTS predictions_history ON predictions (ticks DESC, id DESC);
CREATE INDEX IF NOT EXISTS predictions_by_digit ON predictions (digit, ticks DESC, id DESC);
"""
# The record and its row meet here and nowhere else: the columns in order, and the two mappings.
RECORD_COLUMNS = (
    "id", "digit", "confidence", "probabilities", "model_version", "created_at_ms",
    "content_type", "width", "height", "size_bytes", "sha256", "input_pixels", "label",
    "labeled_at_ms",
)  # fmt: skip
COLUMNS = ", ".join(RECORD_COLUMNS)
INSERT = (
    f"INSERT INTO predictions (ticks, image, {COLUMNS}) "
    f"VALUES ({', '.join('?' * (len(RECORD_COLUMNS) + 2))})"
)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _row(record: PredictionRecord) -> tuple[object, ...]:
    """The values of ``RECORD_COLUMNS`` for a record."""
    return (
        str(record.id),
        record.digit,
        record.confidence,
        json.dumps(list(record.probabilities)),
        record.model_version,
        _ms(record.created_at),
        record.image.content_type,
        record.image.width,
        record.image.height,
        record.image.size_bytes,
        record.image.sha256,
        record.input_pixels,
        record.label,
        _ms(record.labeled_at) if record.labeled_at else None,
    )


def _record(row: tuple[Any, ...]) -> PredictionRecord:
    """The record of a row of ``RECORD_COLUMNS``."""
    pid, digit, confidence, probs, version, created, ctype, w, h, size, sha, pixels, label, at = row
    return PredictionRecord(
        id=uuid.UUID(pid),
        digit=digit,
        confidence=confidence,
        probabilities=tuple(json.loads(probs)),
        model_version=version,
        created_at=_from_ms(created),
        image=ImageMeta(ctype, w, h, size, sha),
        input_pixels=bytes(pixels),
        label=label,
        labeled_at=_from_ms(at) if at is not None else None,
    )


def _insert_all(conn: sqlite3.Connection, *, rows: list[tuple[object, ...]]) -> None:
    """All rows in one transaction: every one of them is stored, or none."""
    conn.execute("BEGIN")
    try:
        conn.executemany(INSERT, rows)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch to write-ahead logging. While another connection is creating the same file or
    switching it too (workers starting together on an empty path), SQLite answers "database is
    locked" at once instead of waiting for the busy timeout, so wait here."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL").fetchone()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _create_schema(conn: sqlite3.Connection) -> None:
    """Create the tables once, under the write lock, so concurrent openers wait for each other
    (``BEGIN IMMEDIATE`` waits for the busy timeout) and the version check sees the result."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"schema version {version} is newer than this service ({SCHEMA_VERSION})"
            )
        for statement in SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class SqliteRepository:
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = str(path)
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        # Group commit: inserts that arrive while a write runs go in the next transaction.
        self._pending: list[tuple[tuple[object, ...], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._executor is None or self._conn is None:
            raise StoreUnavailableError("the SQLite store is not open")
        conn = self._conn
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, conn)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailableError(f"SQLite: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite: {exc}") from exc

    async def open(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        loop = asyncio.get_running_loop()
        try:
            self._conn = await loop.run_in_executor(self._executor, self._connect)
        except (OSError, sqlite3.Error) as exc:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise StoreError(f"cannot open the SQLite store at {self.path}: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None
        )
        try:
            _use_wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            _create_schema(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    async def close(self) -> None:
        if self._executor is None:
            return
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=True)
        self._executor = None

    async def ping(self) -> None:
        await self._run(lambda c: c.execute("SELECT 1").fetchone())

    async def insert(self, record: PredictionRecord, image: bytes) -> None:
        """Stored (committed) when this returns. Concurrent inserts share one transaction,
        which costs one thread hand-off and one commit for the group instead of one each."""
        values = (id_ticks(record.id), image, *_row(record))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((values, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_pending())
        await done

    async def _write_pending(self) -> None:
        while self._pending:
            group, self._pending = self._pending, []
            rows = [values for values, _ in group]
            try:
                await self._run(functools.partial(_insert_all, rows=rows))
            except StoreError as exc:
                for _, done in group:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for _, done in group:
                    if not done.done():
                        done.set_result(None)

    async def get(self, prediction_id: uuid.UUID) -> PredictionRecord | None:
        sql = f"SELECT {COLUMNS} FROM predictions WHERE id = ?"
        row = await self._run(lambda c: c.execute(sql, (str(prediction_id),)).fetchone())
        return _record(row) if row else None

    async def get_image(self, prediction_id: uuid.UUID) -> StoredImage | None:
        sql = "SELECT content_type, image FROM predictions WHERE id = ?"
        row = await self._run(lambda c: c.execute(sql, (str(prediction_id),)).fetchone())
        return StoredImage(row[0], bytes(row[1])) if row else None

    async def history(self, query: HistoryQuery) -> HistoryPage:
        where: list[str] = []
        params: list[object] = []
        if query.before is not None:
            where.append("(ticks < ? OR (ticks = ? AND id < ?))")
            ticks = id_ticks(query.before)
            params += [ticks, ticks, str(query.before)]
        if query.digit is not None:
            where.append("digit = ?")
            params.append(query.digit)
        if query.labeled is not None:
            where.append("label IS NOT NULL" if query.labeled else "label IS NULL")
        sql = (
            f"SELECT {COLUMNS} FROM predictions"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + " ORDER BY ticks DESC, id DESC LIMIT ?"
        )
        params.append(query.limit + 1)
        rows = await self._run(lambda c: c.execute(sql, params).fetchall())
        items = [_record(row) for row in rows[: query.limit]]
        more = len(rows) > query.limit
        return HistoryPage(items, items[-1].id if more and items else None)

    async def set_label(
        self, prediction_id: uuid.UUID, label: int, labeled_at: datetime
    ) -> PredictionRecord | None:
        sql = "UPDATE predictions SET label = ?, labeled_at_ms = ? WHERE id = ?"
        args = (label, _ms(labeled_at), str(prediction_id))
        changed = await self._run(lambda c: c.execute(sql, args).rowcount)
        return await self.get(prediction_id) if changed else None

    async def delete(self, prediction_id: uuid.UUID) -> bool:
        sql = "DELETE FROM predictions WHERE id = ?"
        changed = await self._run(lambda c: c.execute(sql, (str(prediction_id),)).rowcount)
        return bool(changed)
