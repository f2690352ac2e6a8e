"""``mnist-api export-labels``: every labelled prediction, as the model saw it, into a corrections
file (``mnist_core.corrections``) for ``mnist-train train --extra`` and ``mnist-train compare``.

It reads the store the settings name (the SQLite file or the Cassandra keyspace) in chunks and
writes rows as they come, so the export of a large store holds one chunk in memory.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from mnist_api.kernel.databases import open_database
from mnist_api.kernel.settings import Settings, SettingsError
from mnist_api.kernel.timing import to_ms
from mnist_api.predictions.records import LabelledQuery, PredictionRecord
from mnist_api.predictions.repository import open_repository
from mnist_core.corrections import Correction, CorrectionsWriter, is_held_out

CHUNK = 1000  # rows handed to the writer's thread at a time


@dataclass(frozen=True)
class Exported:
    path: Path
    count: int
    held_out: int


def correction_of(record: PredictionRecord) -> Correction:
    if record.label is None or record.labeled_at is None:
        raise ValueError(f"prediction {record.id} has no label")
    return Correction(
        id=str(record.id),
        created_at_ms=to_ms(record.created_at),
        labeled_at_ms=to_ms(record.labeled_at),
        label=record.label,
        predicted=record.digit,
        model_version=record.model_version,
        owner=record.owner,
        pixels=record.input_pixels,
    )


def _add_all(writer: CorrectionsWriter, rows: list[Correction]) -> None:
    for row in rows:
        writer.add(row)


async def export_labels(
    settings: Settings,
    out: Path,
    *,
    owner: str | None = None,
    since: datetime | None = None,
    before: datetime | None = None,
) -> Exported:
    if settings.store == "none":
        raise SettingsError("MNIST_API_STORE=none keeps no predictions to export")
    if since is not None and before is not None and since >= before:
        raise SettingsError("--since must be earlier than --before")
    query = LabelledQuery(owner=owner, since=since, before=before)
    database = open_database(settings)
    await database.open()
    try:
        repository = open_repository(database, settings)
        await repository.open()
        writer = await asyncio.to_thread(CorrectionsWriter, out)
        held_out = 0
        try:
            chunk: list[Correction] = []
            async for record in repository.labelled(query):
                chunk.append(correction_of(record))
                held_out += is_held_out(str(record.id))
                if len(chunk) >= CHUNK:
                    await asyncio.to_thread(_add_all, writer, chunk)
                    chunk = []
            await asyncio.to_thread(_add_all, writer, chunk)
            count = await asyncio.to_thread(writer.close)
        except BaseException:
            await asyncio.to_thread(writer.discard)
            raise
        finally:
            await repository.close()
    finally:
        await database.close()
    return Exported(out, count, held_out)
