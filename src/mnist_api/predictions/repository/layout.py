"""How the history is partitioned in Cassandra, as one object the repository asks.

Every prediction has two history rows in the table ``history``: one in its owner's listing (what
its key sees) and one in the global listing (``*``, what an admin sees). A partition is
``(listing, bucket, shard)``: ``bucket`` is the start of a time bucket (Unix seconds)
of the id's time, ``shard`` spreads the rows of one bucket over several partitions, so several
replicas take the writes of one busy moment.

Bucket length and shard count are sized per owner from the fastest it can upload: a key's rate
limit (its burst plus its rate over one bucket), or, for the global listing and owners without a
limit, the service's design maximum (``SERVICE_MAX_RATE``). A partition is meant to hold at most
``TARGET_ROWS`` rows, half the usual guidance of 100k rows / 100 MB, at that maximum: the bucket is
the longest of a day, an hour, ten minutes or a minute that fits, and shards are added on top of
minute buckets when even a minute does not (``cql/README.md`` has the arithmetic).

Readers never recompute any of this: ``history_buckets`` lists, per owner and month, the
buckets that have rows and their shard counts, newest first, and ``history_months`` the months
that have buckets, so a page steps from one non-empty bucket to the previous one. Writers record
both before the rows (once per bucket and process). A prediction's own row in ``predictions``
keeps where its history rows are, so a label or a delete finds them without recomputing.
"""

from __future__ import annotations

import math
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime

from mnist_api.predictions.records import UUID_EPOCH_OFFSET, Owner

GLOBAL_LISTING = "*"  # the global listing's partitions (owner ids never take this form)
TARGET_ROWS = 50_000  # rows a partition is sized to hold at its owner's fastest ingest
SERVICE_MAX_RATE = (
    5_000.0  # uploads/s the global listing is sized for (10x one node's measured max)
)
BUCKETS_S = (86_400, 3_600, 600, 60)  # a day, an hour, ten minutes, a minute
MAX_SHARDS = 64
MONTH_S = 31 * 86_400
TICKS_PER_S = 10_000_000


@dataclass(frozen=True)
class Sizing:
    """The partitions of one owner: bucket length (seconds) and shards per bucket."""

    bucket_s: int
    shards: int


@dataclass(frozen=True)
class Placement:
    """Where one prediction's history row lives, and the index entries that lead to it."""

    listing: str  # the owner's id, or GLOBAL_LISTING
    bucket: int  # the bucket's start, Unix seconds
    shard: int
    shards: int
    bucket_s: int

    @property
    def month(self) -> int:
        return month_of(self.bucket)

    @property
    def partition(self) -> tuple[str, int, int]:
        return self.listing, self.bucket, self.shard


def sizing_for(rate: float | None, burst: int | None) -> Sizing:
    """The partitions for an owner who uploads at most ``burst`` at once and ``rate`` a second
    after that (None: the service's design maximum)."""
    if rate is None:
        rate = SERVICE_MAX_RATE
        burst = math.ceil(SERVICE_MAX_RATE)
    burst = burst or 0
    for bucket_s in BUCKETS_S:
        if burst + rate * bucket_s <= TARGET_ROWS:
            return Sizing(bucket_s, 1)
    bucket_s = BUCKETS_S[-1]
    shards = math.ceil((burst + rate * bucket_s) / TARGET_ROWS)
    return Sizing(bucket_s, min(MAX_SHARDS, shards))


GLOBAL = sizing_for(None, None)


def seconds_of(prediction_id: uuid.UUID) -> int:
    """The Unix time (whole seconds) of a version-1 UUID."""
    return int((prediction_id.time - UUID_EPOCH_OFFSET) // TICKS_PER_S)


def month_of(unix_s: int) -> int:
    """Months since January 1970."""
    moment = datetime.fromtimestamp(unix_s, tz=UTC)
    return (moment.year - 1970) * 12 + moment.month - 1


def order_key(prediction_id: uuid.UUID) -> tuple[int, bytes]:
    """Cassandra's order of timeuuids: the timestamp, then the last eight bytes compared as
    signed bytes. Rows of several shards are merged in this order, so that ``id < cursor`` in
    a query and the order of a merged page agree."""
    return prediction_id.time, bytes(b ^ 0x80 for b in prediction_id.bytes[8:])


@dataclass(frozen=True)
class ShardedLayout:
    history_table: str = "history"
    buckets_table: str = "history_buckets"
    months_table: str = "history_months"
    index_chunk: int = 32  # index entries read at a time

    def sizing(self, owner: Owner) -> Sizing:
        return sizing_for(owner.rate, owner.burst)

    def place(self, listing: str, sizing: Sizing, prediction_id: uuid.UUID) -> Placement:
        seconds = seconds_of(prediction_id)
        shard = zlib.crc32(prediction_id.bytes) % sizing.shards if sizing.shards > 1 else 0
        return Placement(
            listing=listing,
            bucket=seconds - seconds % sizing.bucket_s,
            shard=shard,
            shards=sizing.shards,
            bucket_s=sizing.bucket_s,
        )

    def placements(self, owner: Owner, prediction_id: uuid.UUID) -> tuple[Placement, Placement]:
        """The owner's row and the global row of a new prediction."""
        return (
            self.place(owner.id, self.sizing(owner), prediction_id),
            self.place(GLOBAL_LISTING, GLOBAL, prediction_id),
        )

    @staticmethod
    def index_ttls(placement: Placement, retention_s: int | None) -> tuple[int, int]:
        """TTLs of the bucket's and the month's index entries: they outlive the last row they
        lead to by the bucket's (the month's) length. 0: kept for ever."""
        if retention_s is None:
            return 0, 0
        return retention_s + placement.bucket_s, retention_s + MONTH_S
