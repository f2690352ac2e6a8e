"""``mnist-api export-labels`` on a large store: time, and the exporter's peak memory, which must
not grow with the number of corrections (they are streamed, never held at once).

    .venv/bin/python bench/export.py [--rows 1000000] [--labelled 0.9]

Fills a SQLite store of its own with ``--rows`` predictions (random 28x28 inputs, a small upload
each), labels a share of them, then runs the real command in a child process and prints its wall
time, its peak resident memory (``ru_maxrss``), the file's size, and the same figures for a
store a tenth as large, so that growth shows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mnist_api.kernel.sqlite import SqliteDatabase
from mnist_api.predictions.records import id_ticks, new_id

CHUNK = 20_000


def fill(path: Path, rows: int, labelled: float) -> None:
    async def create() -> None:
        database = SqliteDatabase(path)
        await database.open()  # creates the schema, as the service does
        await database.close()

    asyncio.run(create())
    rng = np.random.default_rng(0)
    conn = sqlite3.connect(path)
    probabilities = json.dumps([0.1] * 10)
    now_ms = int(time.time() * 1000)
    for start in range(0, rows, CHUNK):
        batch = []
        for i in range(start, min(rows, start + CHUNK)):
            pid = new_id()
            label = int(rng.integers(0, 10)) if rng.random() < labelled else None
            batch.append((
                id_ticks(pid), b"png", str(pid), i % 10, 0.9, probabilities, "cnn-bench",
                now_ms, "image/png", 28, 28, 3, "0" * 64,
                rng.integers(0, 256, 784, dtype=np.uint8).tobytes(), "anonymous", label,
                now_ms + i if label is not None else None,
            ))  # fmt: skip
        conn.executemany(
            "INSERT INTO predictions (ticks, image, id, digit, confidence, probabilities, "
            "model_version, created_at_ms, content_type, width, height, size_bytes, sha256, "
            "input_pixels, owner, label, labeled_at_ms) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            batch,
        )
        conn.commit()
    conn.close()


def export(store: Path, out: Path) -> tuple[float, float, str]:
    """Wall seconds, peak resident MB of the exporter, its output line."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "mnist_api", "export-labels", "--out", str(out)],
        env={"MNIST_API_SQLITE_PATH": str(store), "MNIST_API_AUTH": "off", "PATH": "/usr/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:  # ru_maxrss is the largest child so far: run the larger export last
        peak = before
    return seconds, peak / 1024, done.stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--labelled", type=float, default=0.9)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-export-"))
    for rows in (args.rows // 10, args.rows):
        store = work / f"store-{rows}.sqlite3"
        started = time.perf_counter()
        fill(store, rows, args.labelled)
        filled = time.perf_counter() - started
        out = work / f"corrections-{rows}.npz"
        seconds, peak_mb, line = export(store, out)
        size = out.stat().st_size / 1e6
        print(
            f"{rows:>9,} predictions ({store.stat().st_size / 1e6:,.0f} MB store, filled in "
            f"{filled:.0f} s): export {seconds:.1f} s, peak {peak_mb:.0f} MB resident, "
            f"{size:,.0f} MB file; {line}",
            flush=True,
        )
        store.unlink()
        out.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
