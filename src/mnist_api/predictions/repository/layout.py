"""How the history is partitioned in Cassandra, as one object the repository asks.

The repository holds the statements; the layout says which partition an id belongs to and where a
page starts reading. A re-sharded history (time buckets with shards, for example) is a new
layout object and a migration, not edits across the repository.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from mnist_api.predictions.records import UUID_EPOCH_OFFSET, new_id

TICKS_PER_DAY = 10_000_000 * 86_400  # 100-ns ticks


@dataclass(frozen=True)
class DayLayout:
    """One history partition per UTC day of the id's time (``predictions_by_day``), and an
    index of the days that have rows (``prediction_days``, one partition, newest first), so a
    page steps from one day to the previous non-empty one without scanning empty days."""

    history_table: str = "predictions_by_day"
    index_table: str = "prediction_days"
    index_chunk: int = 32  # days read from the index at a time

    def partition(self, prediction_id: uuid.UUID) -> int:
        """The partition of an id: days since 1970-01-01 (UTC)."""
        return int((prediction_id.time - UUID_EPOCH_OFFSET) // TICKS_PER_DAY)

    def first_partition(self, before: uuid.UUID | None) -> int:
        """Where a page starts: the cursor's partition, or today's for the first page."""
        return self.partition(before if before is not None else new_id())
