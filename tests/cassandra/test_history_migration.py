"""The data migration of the history (``cql/0003_history_by_owner.py``) on a real node: 100,000
predictions in the day-partitioned layout of 0001, ``mnist-api db upgrade`` killed halfway
(SIGKILL), the lock released, the upgrade run again: every row ends up in the new layout exactly
once, pages back newest first, and keeps its label."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import acsylla
import pytest

from mnist_api.kernel.cassandra import connect, disconnect, run
from mnist_api.kernel.databases import CassandraDatabase
from mnist_api.kernel.migrations import Migrator, default_cql_dir, load_migrations
from mnist_api.predictions.records import UUID_EPOCH_OFFSET, HistoryQuery
from mnist_api.predictions.repository.cassandra import CassandraRepository
from tests.fixtures.cassandra import cassandra_settings
from tests.fixtures.servers import clean_env

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.cassandra, pytest.mark.slow]
ROWS = 100_000
DAYS = 3
KILL_AFTER = 40_000
FIELDS = (
    "digit, confidence, probabilities, model_version, created_at, content_type, width, height, "
    "size_bytes, sha256, input_pixels, label, labeled_at"
)


def id_at(ticks: int, sequence: int) -> uuid.UUID:
    """A version-1 UUID at ``ticks`` (100 ns since the UUID epoch), unique by ``sequence``."""
    return uuid.UUID(
        fields=(
            ticks & 0xFFFFFFFF,
            (ticks >> 32) & 0xFFFF,
            ((ticks >> 48) & 0x0FFF) | 0x1000,
            0x80 | ((sequence >> 8) & 0x3F),
            sequence & 0xFF,
            0x010203040506,
        )
    )


def old_rows() -> list[tuple[uuid.UUID, int, int | None]]:
    """(id, day, label) of the predictions to migrate, spread over the last ``DAYS`` days."""
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=DAYS - 1, hours=now.hour, minutes=now.minute, seconds=now.second)
    span_s = (now - start).total_seconds()
    rows = []
    for n in range(ROWS):
        moment = start + timedelta(seconds=span_s * n / ROWS)
        ticks = int(moment.timestamp() * 10_000_000) + UUID_EPOCH_OFFSET + n % 7
        day = int(moment.timestamp() // 86_400)
        rows.append((id_at(ticks, n), day, n % 10 if n % 13 == 0 else None))
    return rows


async def fill(session: Any, keyspace: str, rows: list[tuple[uuid.UUID, int, int | None]]) -> None:
    """Write the rows as the service before 0002 did."""
    by_id = await session.create_prepared(
        f"INSERT INTO {keyspace}.predictions (id, {FIELDS}) VALUES ({', '.join('?' * 14)})"
    )
    by_day = await session.create_prepared(
        f"INSERT INTO {keyspace}.predictions_by_day (day, id, {FIELDS}) "
        f"VALUES ({', '.join('?' * 15)})"
    )
    days = await session.create_prepared(
        f"INSERT INTO {keyspace}.prediction_days (shard, day) VALUES (0, ?)"
    )
    pixels = bytes(range(256)) * 3 + bytes(16)
    limit = asyncio.Semaphore(256)

    async def one(prediction_id: uuid.UUID, day: int, label: int | None) -> None:
        seconds = (prediction_id.time - UUID_EPOCH_OFFSET) / 10_000_000
        created = datetime.fromtimestamp(seconds, tz=UTC)
        values = [
            prediction_id.int % 10, 0.9, [0.01] * 10, "cnn-old", created, "image/png", 28, 28,
            100, "0" * 64, pixels, label, created if label is not None else None,
        ]  # fmt: skip
        async with limit:
            await session.execute(by_id.bind([prediction_id, *values]))
            await session.execute(by_day.bind([day, prediction_id, *values]))

    for day in sorted({day for _, day, _ in rows}):
        await session.execute(days.bind([day]))
    await asyncio.gather(*(one(*row) for row in rows))


async def scan(session: Any, cql: str) -> list[dict[str, Any]]:
    """A whole table, with the driver's paging (a test's check, never a request's path)."""
    found: list[dict[str, Any]] = []
    statement = acsylla.create_statement(cql, page_size=5000)
    while True:
        result = await session.execute(statement)
        found += [row.as_dict() for row in result]
        if not result.has_more_pages():
            return found
        statement.set_page_state(result.page_state())


def kill_then_resume(env: dict[str, str]) -> tuple[list[str], str]:
    """``mnist-api db upgrade`` killed (SIGKILL) once it has moved ``KILL_AFTER`` rows, its lock
    released with ``db unlock``, then run again to the end: the lines of the first run and the
    output of the last."""
    command = [sys.executable, "-m", "mnist_api", "db"]
    seen = []
    with subprocess.Popen(
        [*command, "upgrade"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as first:
        assert first.stdout is not None
        for line in first.stdout:
            seen.append(line)
            moved = re.search(r"moved ([\d,]+) rows", line)
            if moved and int(moved.group(1).replace(",", "")) >= KILL_AFTER:
                os.kill(first.pid, signal.SIGKILL)
                break
        first.wait(timeout=60)
    assert first.returncode == -signal.SIGKILL, "".join(seen)
    unlock = subprocess.run(
        [*command, "unlock"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert unlock.returncode == 0, unlock.stderr
    assert "released the migration lock" in unlock.stdout
    second = subprocess.run(
        [*command, "upgrade"], env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert second.returncode == 0, second.stdout + second.stderr
    return seen, second.stdout


async def test_a_killed_migration_moves_every_row_exactly_once(tmp_path: Path) -> None:
    keyspace = f"mnist_move_{uuid.uuid4().hex[:8]}"
    settings = cassandra_settings(keyspace, cassandra_request_timeout_s=20.0)
    old_dir = tmp_path / "cql-0001"
    old_dir.mkdir()
    shutil.copy(default_cql_dir() / "0001_predictions.cql", old_dir)
    cluster, session = await connect(settings, keyspace=None, wait_s=10)
    try:
        await Migrator(settings, session, load_migrations(old_dir)).upgrade()
        rows = old_rows()
        started = time.monotonic()
        await fill(session, keyspace, rows)
        print(f"wrote {ROWS:,} rows in the old layout in {time.monotonic() - started:.1f} s")

        env = clean_env(
            MNIST_API_STORE="cassandra",
            MNIST_API_CASSANDRA_KEYSPACE=keyspace,
            MNIST_API_CASSANDRA_CONSISTENCY="ONE",
            MNIST_API_CASSANDRA_REQUEST_TIMEOUT_S="20",
            PYTHONUNBUFFERED="1",
        )
        seen, output = await asyncio.to_thread(kill_then_resume, env)
        assert any("applied 0002_keys_and_owned_history" in line for line in seen), seen
        assert "0003_history_by_owner: resuming after" in output, output
        assert f"0003_history_by_owner: done: {ROWS:,} rows moved" in output, output
        assert "applied 0004_drop_day_history" in output, output
        print("".join(seen[-2:]), output.splitlines()[-4:])

        # Every prediction has its owner, once in each listing, and nothing else is there.
        expected = {row[0] for row in rows}
        labels = {row[0]: row[2] for row in rows}
        history = await scan(
            session, f"SELECT listing, id, owner, label, probs FROM {keyspace}.history"
        )
        assert all(r["probs"] == [0.01] * 10 for r in history)
        per_listing = Counter(row["listing"] for row in history)
        assert per_listing == {"anonymous": ROWS, "*": ROWS}
        for listing in ("anonymous", "*"):
            ids = [uuid.UUID(str(r["id"])) for r in history if r["listing"] == listing]
            assert len(ids) == len(set(ids)) == ROWS
            assert set(ids) == expected
        assert {row["owner"] for row in history} == {"anonymous"}
        assert all(labels[uuid.UUID(str(r["id"]))] == r["label"] for r in history)
        owners = await scan(session, f"SELECT id, owner, owner_bucket FROM {keyspace}.predictions")
        assert len(owners) == ROWS
        assert {row["owner"] for row in owners} == {"anonymous"}
        assert all(row["owner_bucket"] is not None for row in owners)
        tables = await run(
            session,
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?",
            [keyspace],
        )
        names = {row.column_value("table_name") for row in tables}
        assert not names & {"predictions_by_day", "prediction_days"}

        # The service pages through all of it, newest first, each once.
        database = CassandraDatabase(settings)
        await database.open()
        store = CassandraRepository(database)
        await store.open()
        try:
            listed: list[uuid.UUID] = []
            before = None
            while True:
                page = await store.history(HistoryQuery(limit=100, before=before))
                listed += [record.id for record in page.items]
                if page.next_before is None:
                    break
                before = page.next_before
            assert len(listed) == ROWS
            assert listed == sorted(expected, key=lambda i: (i.time, i.bytes[8:]), reverse=True)
        finally:
            await store.close()
            await database.close()
    finally:
        await run(session, f"DROP KEYSPACE IF EXISTS {keyspace}")
        await disconnect(cluster, session)
