"""The embedded SQLite database: one file, its schema, and one connection on a thread of its own.

SQLite calls block, so every call runs on one dedicated thread that owns the connection; the
event loop only awaits them. The repositories of every subject (predictions, keys) share the
connection and run their queries through ``SqliteDatabase.run``.

The schema is versioned with ``PRAGMA user_version`` and upgraded in place when the file is
opened, one numbered step at a time (the embedded store has no separate migration command):

1. predictions, with the history's indexes;
2. the owner of each prediction (the key that made it; rows from before keys existed belong to
   ``anonymous``) with per-owner indexes, and the API keys;
3. the labelled predictions in the order of labelling (a partial index: only labelled rows),
   which ``mnist-api export-labels`` reads.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from mnist_api.kernel.database import StoreError, StoreUnavailableError

T = TypeVar("T")
BUSY_TIMEOUT_S = 10.0  # how long a statement waits for another connection's lock
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
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
        CREATE INDEX IF NOT EXISTS predictions_by_digit
            ON predictions (digit, ticks DESC, id DESC);
        """,
    ),
    (
        2,
        """
        ALTER TABLE predictions ADD COLUMN owner TEXT NOT NULL DEFAULT 'anonymous';
        CREATE INDEX predictions_by_owner ON predictions (owner, ticks DESC, id DESC);
        CREATE INDEX predictions_by_owner_digit
            ON predictions (owner, digit, ticks DESC, id DESC);
        CREATE TABLE api_keys (
            id               TEXT PRIMARY KEY,
            name             TEXT NOT NULL,
            secret_sha256    BLOB NOT NULL,     -- the secret itself is never stored
            scopes           TEXT NOT NULL,     -- comma-separated
            rate             REAL NOT NULL,     -- requests per second
            burst            INTEGER NOT NULL,
            created_at_ms    INTEGER NOT NULL,
            last_used_at_ms  INTEGER,
            revoked_at_ms    INTEGER
        );
        """,
    ),
    (
        3,
        """
        CREATE INDEX predictions_labelled ON predictions (labeled_at_ms, id)
            WHERE label IS NOT NULL;
        """,
    ),
    (
        4,
        """
        -- The review queue: predictions whose verdict was not `digit` when they were made, until
        -- a person labels them, least confident first (rows made before it: below 0.9).
        ALTER TABLE predictions ADD COLUMN flagged INTEGER NOT NULL DEFAULT 0;
        UPDATE predictions SET flagged = 1 WHERE label IS NULL AND confidence < 0.9;
        CREATE INDEX predictions_review ON predictions (owner, confidence, id)
            WHERE flagged = 1 AND label IS NULL;
        """,
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


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


def _upgrade_schema(conn: sqlite3.Connection) -> None:
    """Apply the steps the file lacks, under the write lock, so concurrent openers wait for each
    other (``BEGIN IMMEDIATE`` waits for the busy timeout) and each step runs once."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"schema version {version} is newer than this service ({SCHEMA_VERSION})"
            )
        for step, script in MIGRATIONS:
            if step > version:
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class SqliteDatabase:
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = str(path)
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

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
            _upgrade_schema(conn)
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

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` with the connection on the database's thread."""
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

    async def ping(self) -> None:
        await self.run(lambda c: c.execute("SELECT 1").fetchone())


def in_transaction(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    """``work`` in one transaction: all of its writes are stored, or none."""
    conn.execute("BEGIN")
    try:
        result = work(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result
