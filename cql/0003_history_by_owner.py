"""Move the day-partitioned history (``predictions_by_day``, ``prediction_days``) into the owned,
sharded history of 0002, and give every existing prediction its owner.

Every prediction stored before keys existed was made anonymously: it gets the owner
``anonymous``, and two history rows, in the listing ``anonymous`` and in the global one ``*``. The
layout is the one of this step's time, written out here so the step never changes: the
anonymous owner and the global listing both have buckets of 60 s with 7 shards (sized for the
service's design maximum of 5,000 uploads a second, see ``README.md``); the shard of a row is the
CRC-32 of its id's 16 bytes, modulo 7. Where the rows went is recorded in each prediction's row,
and the buckets in the index tables, so readers never recompute it.

The probabilities move to the frozen column ``probs`` (0002; 0004 drops the old one).

Resumable and idempotent: the days are walked newest first and each day's rows newest first in
chunks; after a chunk is written, the position (day, last id, rows moved) is saved in
``migration_checkpoints``, and a run that starts again (after a kill) continues from there. Every
write is an upsert of the same values, so a chunk written twice leaves each row there exactly
once.
"""

from __future__ import annotations

import asyncio
import json
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

STEP = "0003_history_by_owner"
OWNER = "anonymous"
GLOBAL_LISTING = "*"
BUCKET_S = 60
SHARDS = 7
CHUNK = 500
CONCURRENCY = 64
UUID_EPOCH_OFFSET = 0x01B21DD213814000
FIELDS = (
    "digit", "confidence", "probabilities", "model_version", "created_at", "content_type",
    "width", "height", "size_bytes", "sha256", "input_pixels", "label", "labeled_at",
)  # fmt: skip
COLUMNS = ", ".join(FIELDS)
# The new tables keep the probabilities in `probs`, a frozen list (see 0002).
NEW_COLUMNS = COLUMNS.replace("probabilities", "probs")


def _placement(prediction_id: uuid.UUID) -> tuple[int, int, int]:
    """(bucket start, shard, month) of an id, in the layout of this step."""
    seconds = (prediction_id.time - UUID_EPOCH_OFFSET) // 10_000_000
    bucket = seconds - seconds % BUCKET_S
    moment = datetime.fromtimestamp(bucket, tz=UTC)
    month = (moment.year - 1970) * 12 + moment.month - 1
    return bucket, zlib.crc32(prediction_id.bytes) % SHARDS, month


def _day_name(day: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=day)).strftime("%Y-%m-%d")


async def upgrade(step: Any) -> None:
    session = step.session
    ks = step.keyspace

    async def prepared(cql: str) -> Any:
        return await session.create_prepared(cql)

    async def run(statement: Any, params: list[Any]) -> Any:
        bound = statement.bind(params)
        bound.set_is_idempotent(True)
        return await session.execute(bound)

    get_checkpoint = await prepared(
        f"SELECT value FROM {ks}.migration_checkpoints WHERE step = ? AND name = 'position'"
    )
    set_checkpoint = await prepared(
        f"INSERT INTO {ks}.migration_checkpoints (step, name, value) VALUES (?, 'position', ?)"
    )
    days_upto = await prepared(
        f"SELECT day FROM {ks}.prediction_days WHERE shard = 0 AND day <= ? LIMIT 1000"
    )
    count_day = await prepared(f"SELECT COUNT(*) AS n FROM {ks}.predictions_by_day WHERE day = ?")
    page = await prepared(
        f"SELECT id, {COLUMNS} FROM {ks}.predictions_by_day WHERE day = ? LIMIT {CHUNK}"
    )
    page_before = await prepared(
        f"SELECT id, {COLUMNS} FROM {ks}.predictions_by_day WHERE day = ? AND id < ? LIMIT {CHUNK}"
    )
    set_owner = await prepared(
        f"UPDATE {ks}.predictions SET probs = ?, owner = ?, owner_bucket = ?, owner_shard = ?, "
        "global_bucket = ?, global_shard = ? WHERE id = ?"
    )
    insert_history = await prepared(
        f"INSERT INTO {ks}.history (listing, bucket, shard, id, owner, {NEW_COLUMNS}) "
        f"VALUES (?, ?, ?, ?, ?, {', '.join('?' * len(FIELDS))})"
    )
    insert_bucket = await prepared(
        f"INSERT INTO {ks}.history_buckets (listing, month, bucket, shards) VALUES (?, ?, ?, ?)"
    )
    insert_month = await prepared(f"INSERT INTO {ks}.history_months (listing, month) VALUES (?, ?)")

    row = (await run(get_checkpoint, [STEP])).first()
    position = json.loads(row.column_value("value")) if row is not None else {}
    if position.get("done"):
        step.progress(f"{STEP}: already done ({position.get('moved', 0):,} rows)")
        return
    moved = int(position.get("moved", 0))
    resume_day = position.get("day")
    resume_before = uuid.UUID(position["before"]) if position.get("before") else None
    if moved:
        step.progress(f"{STEP}: resuming after {moved:,} rows (day {_day_name(resume_day)})")

    limit = asyncio.Semaphore(CONCURRENCY)
    indexed: set[tuple[str, int, int]] = set()

    async def move(data: dict[str, Any]) -> None:
        prediction_id = uuid.UUID(str(data["id"]))
        bucket, shard, month = _placement(prediction_id)
        values = [data[name] for name in FIELDS]
        async with limit:
            for listing in (OWNER, GLOBAL_LISTING):
                if (listing, month, bucket) not in indexed:
                    await run(insert_month, [listing, month])
                    await run(insert_bucket, [listing, month, bucket, SHARDS])
                    indexed.add((listing, month, bucket))
            await asyncio.gather(
                run(insert_history, [OWNER, bucket, shard, prediction_id, OWNER, *values]),
                run(insert_history, [GLOBAL_LISTING, bucket, shard, prediction_id, OWNER, *values]),
            )
            probs = data["probabilities"]
            await run(set_owner, [probs, OWNER, bucket, shard, bucket, shard, prediction_id])

    newest = resume_day if resume_day is not None else 2**31 - 1
    while True:
        days = [int(r.column_value("day")) for r in await run(days_upto, [newest])]
        if not days:
            break
        for day in days:
            before = resume_before if day == resume_day else None
            in_day = int((await run(count_day, [day])).first().column_value("n"))
            step.progress(f"{STEP}: day {_day_name(day)}: {in_day:,} rows")
            while True:
                if before is None:
                    rows = [r.as_dict() for r in await run(page, [day])]
                else:
                    rows = [r.as_dict() for r in await run(page_before, [day, before])]
                if not rows:
                    break
                # Rows with no digit are what a label written after a delete leaves: not moved.
                live = [r for r in rows if r["digit"] is not None]
                await asyncio.gather(*(move(r) for r in live))
                moved += len(live)
                before = uuid.UUID(str(rows[-1]["id"]))
                checkpoint = {"day": day, "before": str(before), "moved": moved}
                await run(set_checkpoint, [STEP, json.dumps(checkpoint)])
                step.progress(f"{STEP}: moved {moved:,} rows (day {_day_name(day)})")
                if len(rows) < CHUNK:
                    break
        newest = days[-1] - 1
    await run(set_checkpoint, [STEP, json.dumps({"done": True, "moved": moved})])
    step.progress(f"{STEP}: done: {moved:,} rows moved")
