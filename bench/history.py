"""The Cassandra history layouts under sustained ingest: the day partitions of migration 0001
next to the owned, sharded listings of 0002, in one run, at the API's maximum upload rate.

    MNIST_DATA_DIR=... .venv/bin/python bench/history.py --model models            # single node
    MNIST_DATA_DIR=... .venv/bin/python bench/history.py --model models --cluster  # 3 nodes

1. The API's maximum upload rate on this topology: ``mnist-api serve`` (one worker, the new
   layout) and wrk uploading real MNIST digits from 64 connections for ``--api-seconds``.
2. Sustained ingest at that rate for ``--minutes`` (10 by default) into each layout in turn, in
   keyspaces of their own, through the store's own write path (the repository for the new layout;
   for the old one, its statements as the service wrote them before keys: the upload, then the
   prediction, its day row and the day index in one logged batch): achieved rate, write p50/p99.
3. History pages of 20: the newest page and, following the cursor, 1,000 pages deep: p50/p99 of
   the first 100 pages and of pages 901-1,000.
4. The largest partition of each history table, as Cassandra reports it after a flush
   (``nodetool tablestats``: compacted partition maximum bytes), and its rows, counted.

The ingest writes everything as one owner without a rate limit (``anonymous``), whose listing is
sized like the global one: the worst case of the new layout.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api import BOUNDARY, Server, requests_for  # bench/api.py

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_HOSTS = "127.0.0.1,127.0.0.2,127.0.0.3"
CONCURRENCY = 256
PAGE = 20
DEEP = 1000
IMAGE = bytes(range(256)) * 4  # about the size of an uploaded PNG
PIXELS = bytes(range(256)) * 3 + bytes(16)
OLD_FIELDS = (
    "digit, confidence, probabilities, model_version, created_at, content_type, width, height, "
    "size_bytes, sha256, input_pixels"
)


@dataclass
class Topology:
    name: str
    overrides: dict[str, object]

    def env(self) -> dict[str, str]:
        return {f"MNIST_API_{k.upper()}": str(v) for k, v in self.overrides.items()}


def topology(cluster: bool) -> Topology:
    if cluster:
        return Topology(
            "3-node cluster (RF 3, LOCAL_QUORUM)",
            {
                "store": "cassandra",
                "cassandra_contact_points": CLUSTER_HOSTS,
                "cassandra_consistency": "LOCAL_QUORUM",
                "cassandra_replication": "SimpleStrategy:3",
                "cassandra_request_timeout_s": 10.0,
            },
        )
    return Topology(
        "single node (RF 1, ONE)",
        {"store": "cassandra", "cassandra_consistency": "ONE", "cassandra_request_timeout_s": 10.0},
    )


def ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))] * 1000 if ordered else 0.0


# --- 1. the API's maximum rate -------------------------------------------------------------


def migrate(settings_env: dict[str, str], cql_dir: Path | None = None) -> None:
    env = settings_env | ({"MNIST_API_CQL_DIR": str(cql_dir)} if cql_dir else {})
    subprocess.run(
        [sys.executable, "-m", "mnist_api", "db", "upgrade"], env=env | {"PATH": "/usr/bin:/bin"},
        check=True, capture_output=True,
    )  # fmt: skip


def api_rate(top: Topology, model: Path, work: Path, seconds: float) -> float:
    keyspace = f"bench_api_{secrets.token_hex(3)}"
    env = top.env() | {"MNIST_API_CASSANDRA_KEYSPACE": keyspace}
    migrate(env)
    bodies = work / "bodies"
    requests_for(500, bodies)
    server = Server(
        env | {"MNIST_API_MODEL_PATH": str(model), "MNIST_API_AUTH": "off"},
        work / "api.log",
        workers=1,
    )
    try:
        script = ROOT / "bench" / "wrk_upload.lua"
        command = [
            "wrk", "-t1", "-c64", "--timeout", "60s", f"-d{round(seconds)}s", "-s", str(script),
            f"http://127.0.0.1:{server.port}/v1/predictions", "--", str(bodies), "500", BOUNDARY,
        ]  # fmt: skip
        subprocess.run([*command[:5], "-d5s", *command[6:]], capture_output=True, check=True)
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    finally:
        server.stop()
    found = dict(kv.split("=") for kv in re.search(r"^WRK (.*)$", output, re.M).group(1).split())  # type: ignore[union-attr]
    rate = float(found["requests"]) / (float(found["duration_us"]) / 1e6)
    errors = int(found["status_errors"]) + int(found["socket_errors"])
    print(
        f"  API, 1 worker, 64 connections: {rate:.0f} uploads/s, p50 {float(found['p50_ms']):.1f}"
        f" ms, p99 {float(found['p99_ms']):.1f} ms, errors {errors}",
        flush=True,
    )
    return rate


# --- 2. the layouts' write paths -------------------------------------------------------------


class NewLayout:
    name = "owned listings (0002)"

    def __init__(self, settings: Any) -> None:
        from mnist_api.kernel.databases import CassandraDatabase
        from mnist_api.predictions.records import Owner
        from mnist_api.predictions.repository.cassandra import CassandraRepository

        self.settings = settings
        self.database = CassandraDatabase(settings)
        self.store = CassandraRepository(self.database)
        self.owner = Owner("anonymous")

    async def open(self) -> None:
        await self.database.open()
        await self.store.open()

    async def close(self) -> None:
        await self.store.close()
        await self.database.close()

    async def write(self, n: int) -> None:
        from mnist_api.predictions.records import ImageMeta, PredictionRecord, id_time, new_id

        pid = new_id()
        record = PredictionRecord(
            id=pid, digit=n % 10, confidence=0.9, probabilities=tuple([0.9] + [0.1 / 9] * 9),
            model_version="bench", created_at=id_time(pid),
            image=ImageMeta("image/png", 28, 28, len(IMAGE), hashlib.sha256(IMAGE).hexdigest()),
            input_pixels=PIXELS, owner=self.owner.id,
        )  # fmt: skip
        await self.store.insert(record, IMAGE, self.owner)

    async def page(self, before: uuid.UUID | None) -> uuid.UUID | None:
        from mnist_api.predictions.records import HistoryQuery

        page = await self.store.history(HistoryQuery(limit=PAGE, before=before))
        return page.next_before

    async def partitions(self) -> Counter[tuple[object, ...]]:
        rows = await scan(self.database.session, f"SELECT listing, bucket, shard FROM "
                          f"{self.settings.cassandra_keyspace}.history")  # fmt: skip
        return Counter((r["listing"], r["bucket"], r["shard"]) for r in rows)

    tables = ("history",)


class OldLayout:
    """The write and read path of the day-partitioned history, as the service had them."""

    name = "day partitions (0001)"
    tables = ("predictions_by_day",)

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.ks = settings.cassandra_keyspace
        self.cluster: Any = None
        self.session: Any = None
        self.ps: dict[str, Any] = {}

    async def open(self) -> None:
        from mnist_api.kernel.cassandra import connect

        self.cluster, self.session = await connect(self.settings, keyspace=None, wait_s=30)
        marks = ", ".join("?" * 12)
        for key, cql in {
            "image": f"INSERT INTO {self.ks}.prediction_images (id, content_type, data) "
            "VALUES (?, ?, ?)",
            "row": f"INSERT INTO {self.ks}.predictions (id, {OLD_FIELDS}) VALUES ({marks})",
            "day_row": f"INSERT INTO {self.ks}.predictions_by_day (day, id, {OLD_FIELDS}) "
            f"VALUES (?, {marks})",
            "day": f"INSERT INTO {self.ks}.prediction_days (shard, day) VALUES (0, ?)",
            "days": f"SELECT day FROM {self.ks}.prediction_days WHERE shard = 0 AND day <= ? "
            "LIMIT 32",
            "page": f"SELECT id, {OLD_FIELDS} FROM {self.ks}.predictions_by_day WHERE day = ? "
            "LIMIT ?",
            "page_before": f"SELECT id, {OLD_FIELDS} FROM {self.ks}.predictions_by_day "
            "WHERE day = ? AND id < ? LIMIT ?",
        }.items():
            self.ps[key] = await self.session.create_prepared(cql)

    async def close(self) -> None:
        from mnist_api.kernel.cassandra import disconnect

        await disconnect(self.cluster, self.session)

    async def write(self, n: int) -> None:
        import acsylla

        from mnist_api.predictions.records import id_time, new_id

        pid = new_id()
        day = int((pid.time - 0x01B21DD213814000) // (10_000_000 * 86_400))
        values = [
            n % 10, 0.9, [0.9] + [0.1 / 9] * 9, "bench", id_time(pid), "image/png", 28, 28,
            len(IMAGE), hashlib.sha256(IMAGE).hexdigest(), PIXELS,
        ]  # fmt: skip
        await self.session.execute(self.ps["image"].bind([pid, "image/png", IMAGE]))
        batch = acsylla.create_batch_logged()
        batch.add_statement(self.ps["row"].bind([pid, *values]))
        batch.add_statement(self.ps["day_row"].bind([day, pid, *values]))
        batch.add_statement(self.ps["day"].bind([day]))
        await self.session.execute_batch(batch)

    async def page(self, before: uuid.UUID | None) -> uuid.UUID | None:
        """A page of 20 as the old repository read it: from the cursor's day, stepping back."""
        from mnist_api.predictions.records import new_id

        start = before or new_id()
        day = int((start.time - 0x01B21DD213814000) // (10_000_000 * 86_400))
        days = [
            r.column_value("day") for r in await self.session.execute(self.ps["days"].bind([day]))
        ]
        found: list[Any] = []
        for d in days:
            if before is not None and d == day:
                rows = await self.session.execute(
                    self.ps["page_before"].bind([d, before, PAGE + 1 - len(found)])
                )
            else:
                rows = await self.session.execute(self.ps["page"].bind([d, PAGE + 1 - len(found)]))
            found += [r.as_dict() for r in rows]
            if len(found) > PAGE:
                return uuid.UUID(str(found[PAGE - 1]["id"]))
        return None

    async def partitions(self) -> Counter[tuple[object, ...]]:
        rows = await scan(self.session, f"SELECT day FROM {self.ks}.predictions_by_day")
        return Counter((r["day"],) for r in rows)


async def scan(session: Any, cql: str) -> list[dict[str, Any]]:
    import acsylla

    found: list[dict[str, Any]] = []
    statement = acsylla.create_statement(cql, page_size=5000, timeout=120)
    while True:
        result = await session.execute(statement)
        found += [row.as_dict() for row in result]
        if not result.has_more_pages():
            return found
        statement.set_page_state(result.page_state())


async def ingest(layout: Any, rate: float, minutes: float) -> dict[str, float]:
    """Writes at ``rate`` a second for ``minutes``; latency of each, and the rate achieved."""
    latencies: list[float] = []
    errors = 0
    limit = asyncio.Semaphore(CONCURRENCY)
    tasks: set[asyncio.Task[None]] = set()

    async def one(n: int) -> None:
        nonlocal errors
        started = time.perf_counter()
        try:
            await layout.write(n)
            latencies.append(time.perf_counter() - started)
        except Exception:
            errors += 1
        finally:
            limit.release()

    began = time.perf_counter()
    end = began + minutes * 60
    n = 0
    last_report = began
    while time.perf_counter() < end:
        due = began + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await limit.acquire()
        task = asyncio.create_task(one(n))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        n += 1
        if time.perf_counter() - last_report > 60:
            last_report = time.perf_counter()
            print(f"    {layout.name}: {n:,} written after {last_report - began:.0f} s", flush=True)
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - began
    return {
        "written": len(latencies),
        "errors": errors,
        "rate": len(latencies) / elapsed,
        "p50_ms": ms(latencies, 50),
        "p99_ms": ms(latencies, 99),
    }


async def paging(layout: Any) -> dict[str, float]:
    times: list[float] = []
    before = None
    for _ in range(DEEP):
        started = time.perf_counter()
        before = await layout.page(before)
        times.append(time.perf_counter() - started)
        if before is None:
            break
    return {
        "pages": len(times),
        "newest_p50_ms": ms(times[:100], 50),
        "newest_p99_ms": ms(times[:100], 99),
        "deep_p50_ms": ms(times[-100:], 50),
        "deep_p99_ms": ms(times[-100:], 99),
    }


def nodetool(cluster: bool, *args: str) -> str:
    command = [
        str(ROOT / "scripts" / "cassandra"),
        *(["cluster", "nodetool", "1"] if cluster else ["nodetool"]),
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def largest_partition(cluster: bool, keyspace: str, table: str) -> int:
    nodetool(cluster, "flush", keyspace)
    stats = nodetool(cluster, "tablestats", f"{keyspace}.{table}")
    match = re.search(r"Compacted partition maximum bytes:\s+(\d+)", stats)
    assert match, stats
    return int(match.group(1))


async def run_layout(
    layout_cls: Any, top: Topology, rate: float, minutes: float, cluster: bool
) -> dict[str, Any]:
    from mnist_api.kernel.settings import load_settings

    keyspace = f"bench_{'old' if layout_cls is OldLayout else 'new'}_{secrets.token_hex(3)}"
    settings = load_settings(auth="off", cassandra_keyspace=keyspace, **top.overrides)  # type: ignore[arg-type]
    env = top.env() | {"MNIST_API_CASSANDRA_KEYSPACE": keyspace}
    if layout_cls is OldLayout:
        old = Path(tempfile.mkdtemp(prefix="cql-0001-"))
        shutil.copy(ROOT / "cql" / "0001_predictions.cql", old)
        migrate(env, old)
    else:
        migrate(env)
    layout = layout_cls(settings)
    await layout.open()
    try:
        print(f"  {layout.name}: {minutes:g} min at {rate:.0f}/s", flush=True)
        written = await ingest(layout, rate, minutes)
        pages = await paging(layout)
        partitions = await layout.partitions()
        biggest = max(partitions.values())
        figures: dict[str, Any] = {
            **written, **pages,
            "partitions": len(partitions),
            "largest_partition_rows": biggest,
            "largest_partition_bytes": largest_partition(cluster, keyspace, layout.tables[0]),
        }  # fmt: skip
    finally:
        await layout.close()
    print(
        f"  {layout.name}: {figures['rate']:.0f} writes/s ({figures['errors']} errors), write "
        f"p50 {figures['p50_ms']:.1f} ms p99 {figures['p99_ms']:.1f} ms; page p99 newest "
        f"{figures['newest_p99_ms']:.1f} ms, {figures['pages']} pages deep "
        f"{figures['deep_p99_ms']:.1f} ms; {figures['partitions']:,} history partitions, the "
        f"largest {figures['largest_partition_rows']:,} rows, "
        f"{figures['largest_partition_bytes'] / 1e6:.1f} MB (nodetool)",
        flush=True,
    )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=Path("models"))
    parser.add_argument("--cluster", action="store_true", help="on the 3-node cluster")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--api-seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, help="ingest rate (default: the API's measured max)")
    args = parser.parse_args()
    top = topology(args.cluster)
    print(f"{top.name}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        rate = args.rate or api_rate(top, args.model, Path(tmp), args.api_seconds)
    for layout_cls in (OldLayout, NewLayout):
        asyncio.run(run_layout(layout_cls, top, rate, args.minutes, args.cluster))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
