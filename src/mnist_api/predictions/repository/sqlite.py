"""Predictions in the embedded SQLite file (``kernel.sqlite`` holds the connection and the
schema): one row per prediction, with its upload and its owner; the history is read through the
indexes on (ticks, id) and (owner, ticks, id).

With a retention period, a prediction is invisible from the moment it expires (every read asks
for rows younger than the cutoff), and a task deletes expired rows on a schedule
(``MNIST_API_PURGE_INTERVAL_S``), in small transactions so that writers never wait long.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from mnist_api.kernel.database import StoreError
from mnist_api.kernel.sqlite import SqliteDatabase, in_transaction
from mnist_api.kernel.timing import from_ms, to_ms
from mnist_api.predictions.records import (
    UUID_EPOCH_OFFSET,
    HistoryPage,
    HistoryQuery,
    ImageMeta,
    LabelledQuery,
    Owner,
    PredictionRecord,
    ReviewPage,
    ReviewQuery,
    StoredImage,
    id_ticks,
)

log = logging.getLogger("mnist_api")
# The record and its row meet here and nowhere else: the columns in order, and the two mappings.
RECORD_COLUMNS = (
    "id", "digit", "confidence", "probabilities", "model_version", "created_at_ms",
    "content_type", "width", "height", "size_bytes", "sha256", "input_pixels", "owner", "label",
    "labeled_at_ms", "flagged",
)  # fmt: skip
COLUMNS = ", ".join(RECORD_COLUMNS)
LABELED_AT = RECORD_COLUMNS.index("labeled_at_ms")
INSERT = (
    f"INSERT INTO predictions (ticks, image, {COLUMNS}) "
    f"VALUES ({', '.join('?' * (len(RECORD_COLUMNS) + 2))})"
)
PURGE_CHUNK = 500  # rows deleted per transaction
EXPORT_CHUNK = 1000  # labelled rows read per query by an export


def _row(record: PredictionRecord) -> tuple[object, ...]:
    """The values of ``RECORD_COLUMNS`` for a record."""
    return (
        str(record.id),
        record.digit,
        record.confidence,
        json.dumps(list(record.probabilities)),
        record.model_version,
        to_ms(record.created_at),
        record.image.content_type,
        record.image.width,
        record.image.height,
        record.image.size_bytes,
        record.image.sha256,
        record.input_pixels,
        record.owner,
        record.label,
        to_ms(record.labeled_at) if record.labeled_at else None,
        int(record.flagged),
    )


def _record(row: tuple[Any, ...]) -> PredictionRecord:
    """The record of a row of ``RECORD_COLUMNS``."""
    pid, digit, confidence, probs, version, created, ctype, w, h, size, sha, pixels = row[:12]
    owner, label, at, flagged = row[12:]
    return PredictionRecord(
        id=uuid.UUID(pid),
        digit=digit,
        confidence=confidence,
        probabilities=tuple(json.loads(probs)),
        model_version=version,
        created_at=from_ms(created),
        image=ImageMeta(ctype, w, h, size, sha),
        input_pixels=bytes(pixels),
        owner=owner,
        label=label,
        labeled_at=from_ms(at) if at is not None else None,
        flagged=bool(flagged),
    )


def _fetch_all(conn: sqlite3.Connection, *, sql: str, args: list[object]) -> list[Any]:
    return conn.execute(sql, args).fetchall()


def _insert_all(conn: sqlite3.Connection, *, rows: list[tuple[object, ...]]) -> None:
    """All rows in one transaction: every one of them is stored, or none."""
    in_transaction(conn, lambda c: c.executemany(INSERT, rows))


def _purge(conn: sqlite3.Connection, *, before_ticks: int) -> int:
    """Delete up to ``PURGE_CHUNK`` predictions older than the cutoff; how many went."""
    return conn.execute(
        "DELETE FROM predictions WHERE rowid IN "
        "(SELECT rowid FROM predictions WHERE ticks < ? LIMIT ?)",
        (before_ticks, PURGE_CHUNK),
    ).rowcount


class SqliteRepository:
    name = "sqlite"

    def __init__(
        self,
        database: SqliteDatabase,
        *,
        retention_s: int | None = None,
        purge_interval_s: float = 3600.0,
    ) -> None:
        self._db = database
        self.location = database.location
        self.retention_s = retention_s
        self._purge_interval_s = purge_interval_s
        self._purger: asyncio.Task[None] | None = None
        # Group commit: inserts that arrive while a write runs go in the next transaction.
        self._pending: list[tuple[tuple[object, ...], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def open(self) -> None:
        if self.retention_s is not None:
            self._purger = asyncio.create_task(self._purge_forever(), name="sqlite-purge")

    async def close(self) -> None:
        if self._purger is not None:
            self._purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purger
            self._purger = None

    async def ping(self) -> None:
        await self._db.ping()

    def _cutoff(self) -> int:
        """The ticks before which predictions have expired (0: none expire)."""
        if self.retention_s is None:
            return 0
        return int((time.time() - self.retention_s) * 10_000_000) + UUID_EPOCH_OFFSET

    async def purge(self) -> int:
        """Delete every expired prediction now; how many went."""
        removed = 0
        while True:
            purge = functools.partial(_purge, before_ticks=self._cutoff())
            done = await self._db.run(functools.partial(in_transaction, work=purge))
            removed += done
            if done < PURGE_CHUNK:
                return removed

    async def _purge_forever(self) -> None:
        while True:
            try:
                removed = await self.purge()
                if removed:
                    log.info("deleted %d expired predictions", removed)
            except StoreError as exc:
                log.warning("could not delete expired predictions: %s", exc)
            await asyncio.sleep(self._purge_interval_s)

    async def insert(self, record: PredictionRecord, image: bytes, owner: Owner) -> None:
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
                await self._db.run(functools.partial(_insert_all, rows=rows))
            except asyncio.CancelledError:
                queued, self._pending = self._pending, []
                for _, done in group + queued:
                    done.cancel()
                raise
            except Exception as exc:  # a store's error or a fault: every waiter hears of it
                for _, done in group:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for _, done in group:
                    if not done.done():
                        done.set_result(None)

    def _visible(self, owner: str | None) -> tuple[str, list[object]]:
        """The condition on a row that the caller may see and that has not expired."""
        where, params = "ticks >= ?", list[object]([self._cutoff()])
        if owner is not None:
            where += " AND owner = ?"
            params.append(owner)
        return where, params

    async def get(self, prediction_id: uuid.UUID, owner: str | None) -> PredictionRecord | None:
        visible, params = self._visible(owner)
        sql = f"SELECT {COLUMNS} FROM predictions WHERE id = ? AND {visible}"
        args = (str(prediction_id), *params)
        row = await self._db.run(lambda c: c.execute(sql, args).fetchone())
        return _record(row) if row else None

    async def get_image(self, prediction_id: uuid.UUID, owner: str | None) -> StoredImage | None:
        visible, params = self._visible(owner)
        sql = f"SELECT content_type, image FROM predictions WHERE id = ? AND {visible}"
        args = (str(prediction_id), *params)
        row = await self._db.run(lambda c: c.execute(sql, args).fetchone())
        return StoredImage(row[0], bytes(row[1])) if row else None

    async def history(self, query: HistoryQuery) -> HistoryPage:
        visible, params = self._visible(query.owner)
        where: list[str] = [visible]
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
            f"SELECT {COLUMNS} FROM predictions WHERE {' AND '.join(where)}"
            " ORDER BY ticks DESC, id DESC LIMIT ?"
        )
        params.append(query.limit + 1)
        rows = await self._db.run(lambda c: c.execute(sql, params).fetchall())
        items = [_record(row) for row in rows[: query.limit]]
        more = len(rows) > query.limit
        return HistoryPage(items, items[-1].id if more and items else None)

    async def review(self, query: ReviewQuery) -> ReviewPage:
        """Through the partial index of flagged, unlabelled rows, (owner, confidence, id)."""
        visible, params = self._visible(query.owner)
        where = [visible, "flagged = 1", "label IS NULL", "created_at_ms >= ?"]
        params.append(to_ms(query.since))
        if query.after is not None:
            where.append("(confidence, id) > (?, ?)")
            params += [query.after[0], str(query.after[1])]
        sql = (
            f"SELECT {COLUMNS} FROM predictions WHERE {' AND '.join(where)}"
            " ORDER BY confidence, id LIMIT ?"
        )
        params.append(query.limit + 1)
        rows = await self._db.run(functools.partial(_fetch_all, sql=sql, args=params))
        items = [_record(row) for row in rows[: query.limit]]
        more = len(rows) > query.limit
        last = items[-1] if more and items else None
        return ReviewPage(items, (last.confidence, last.id) if last is not None else None)

    async def set_label(
        self, prediction_id: uuid.UUID, label: int, labeled_at: datetime, owner: str | None
    ) -> PredictionRecord | None:
        visible, params = self._visible(owner)
        sql = f"UPDATE predictions SET label = ?, labeled_at_ms = ? WHERE id = ? AND {visible}"
        args = (label, to_ms(labeled_at), str(prediction_id), *params)
        changed = await self._db.run(lambda c: c.execute(sql, args).rowcount)
        return await self.get(prediction_id, owner) if changed else None

    async def delete(self, prediction_id: uuid.UUID, owner: str | None) -> bool:
        visible, params = self._visible(owner)
        sql = f"DELETE FROM predictions WHERE id = ? AND {visible}"
        args = (str(prediction_id), *params)
        changed = await self._db.run(lambda c: c.execute(sql, args).rowcount)
        return bool(changed)

    async def labelled(self, query: LabelledQuery) -> AsyncIterator[PredictionRecord]:
        """In the order of labelling, a chunk per query, each continuing after the last row of
        the one before (labelled time, id), through the partial index of labelled rows."""
        visible, params = self._visible(query.owner)
        where = [visible, "label IS NOT NULL"]
        if query.since is not None:
            where.append("labeled_at_ms >= ?")
            params.append(to_ms(query.since))
        if query.before is not None:
            where.append("labeled_at_ms < ?")
            params.append(to_ms(query.before))
        base = " AND ".join(where)
        after: tuple[int, str] | None = None
        while True:
            sql = f"SELECT {COLUMNS} FROM predictions WHERE {base}"
            args = list(params)
            if after is not None:
                sql += " AND (labeled_at_ms, id) > (?, ?)"
                args += [after[0], after[1]]
            sql += " ORDER BY labeled_at_ms, id LIMIT ?"
            args.append(EXPORT_CHUNK)
            rows = await self._db.run(functools.partial(_fetch_all, sql=sql, args=args))
            for row in rows:
                yield _record(row)
            if len(rows) < EXPORT_CHUNK:
                return
            after = (rows[-1][LABELED_AT], rows[-1][0])
