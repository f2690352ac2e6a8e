"""API throughput and latency, and store latency, in one run.

    MNIST_DATA_DIR=../shared/data/mnist .venv/bin/python bench/api.py --model models [--cassandra]

Starts ``mnist-api serve`` on 127.0.0.1 once per scenario and drives concurrent keep-alive
clients that upload real MNIST test digits as PNG for a fixed time, then prints throughput,
p50/p95/p99 latency, errors and accuracy. Scenarios:

- batched   the service as shipped: batched compiled inference, SQLite store;
- predict   (a) the original way: one ``model.predict`` per request, no batching, SQLite store;
- ceiling   (b) the same app with inference and storage switched off;
- cassandra the service as shipped on the local Cassandra node (with --cassandra).

Targets on a 2-core machine: batched at 64 clients >= 5x predict and >= 50% of ceiling;
p99 <= 50 ms at 16 clients. With --cassandra it also measures the stores' own write and read
latency (p50/p99). The load generator runs on the same two cores as the server.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
BOUNDARY = "benchboundary7d1f"


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    correct: int = 0
    statuses: dict[int, int] = field(default_factory=dict)

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies, q) * 1000) if self.latencies else float("nan")


def requests_for(n: int) -> list[tuple[bytes, int]]:
    from mnist_train.data import load_mnist

    data = load_mnist()
    out = []
    for index in range(n):
        buffer = io.BytesIO()
        Image.fromarray(data.test_images[index]).save(buffer, format="PNG")
        png = buffer.getvalue()
        body = (
            (
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
                f'filename="{index}.png"\r\nContent-Type: image/png\r\n\r\n'
            ).encode()
            + png
            + f"\r\n--{BOUNDARY}--\r\n".encode()
        )
        head = (
            "POST /v1/predictions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        out.append((head + body, int(data.test_labels[index])))
    return out


async def client(
    port: int, requests: list[tuple[bytes, int]], offset: int, until: float, stats: Stats
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = offset
    try:
        while time.perf_counter() < until:
            request, label = requests[i % len(requests)]
            i += 1
            started = time.perf_counter()
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = await reader.readexactly(length)
            stats.latencies.append(time.perf_counter() - started)
            stats.statuses[status] = stats.statuses.get(status, 0) + 1
            if status == 201:
                stats.correct += json.loads(body)["digit"] == label
            else:
                stats.errors += 1
    finally:
        writer.close()


async def drive(
    port: int, requests: list[tuple[bytes, int]], clients: int, seconds: float
) -> Stats:
    warm = Stats()
    until = time.perf_counter() + 1.5
    await asyncio.gather(*(client(port, requests, c * 37, until, warm) for c in range(clients)))
    stats = Stats()
    until = time.perf_counter() + seconds
    await asyncio.gather(*(client(port, requests, c * 53, until, stats) for c in range(clients)))
    return stats


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.log = log.open("wb")
        full = {k: v for k, v in os.environ.items() if not k.startswith("MNIST_API_")} | env
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mnist_api",
                "serve",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            env=full,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited; see {log}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError("server not ready")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


def report(name: str, clients: int, seconds: float, stats: Stats) -> float:
    done = len(stats.latencies)
    throughput = done / seconds
    accuracy = stats.correct / max(1, done - stats.errors) * 100
    print(
        f"{name:10} {clients:3d} clients  {throughput:8.1f} req/s  p50 {stats.pct(50):7.1f} ms  "
        f"p95 {stats.pct(95):7.1f} ms  p99 {stats.pct(99):7.1f} ms  errors {stats.errors:4d}  "
        f"accuracy {accuracy:5.1f}%  statuses {dict(sorted(stats.statuses.items()))}",
        flush=True,
    )
    return throughput


async def store_latency(settings_overrides: dict[str, object], n: int) -> None:
    """Write and read latency of a store itself, from Python, without HTTP."""
    import hashlib

    from mnist_api.settings import load_settings
    from mnist_api.store.base import HistoryQuery, ImageMeta, PredictionRecord, id_time, new_id
    from mnist_api.store.factory import make_store

    store = make_store(load_settings(**settings_overrides))  # type: ignore[arg-type]
    await store.open()
    image = bytes(range(256)) * 4  # about the size of a small PNG upload
    writes, reads, pages = [], [], []
    ids = []
    try:
        for i in range(n):
            pid = new_id()
            record = PredictionRecord(
                id=pid,
                digit=i % 10,
                confidence=0.9,
                probabilities=tuple([0.9] + [0.1 / 9] * 9),
                model_version="bench",
                created_at=id_time(pid),
                image=ImageMeta("image/png", 28, 28, len(image), hashlib.sha256(image).hexdigest()),
                input_pixels=bytes(784),
            )
            started = time.perf_counter()
            await store.insert(record, image)
            writes.append(time.perf_counter() - started)
            ids.append(pid)
        for pid in ids:
            started = time.perf_counter()
            await store.get(pid)
            reads.append(time.perf_counter() - started)
        for _ in range(50):
            started = time.perf_counter()
            await store.history(HistoryQuery(limit=20))
            pages.append(time.perf_counter() - started)
    finally:
        await store.close()

    def ms(values: list[float], q: float) -> float:
        return float(np.percentile(values, q) * 1000)

    print(
        f"store {store.name:9}  "
        f"write p50 {ms(writes, 50):6.2f} ms  p99 {ms(writes, 99):6.2f} ms  |  "
        f"read by id p50 {ms(reads, 50):6.2f} ms  p99 {ms(reads, 99):6.2f} ms  |  "
        f"history page(20) p50 {ms(pages, 50):6.2f} ms  p99 {ms(pages, 99):6.2f} ms",
        flush=True,
    )


def migrate(keyspace: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNIST_API_")}
    env |= {"MNIST_API_CASSANDRA_KEYSPACE": keyspace, "MNIST_API_CASSANDRA_CONSISTENCY": "ONE"}
    subprocess.run([sys.executable, "-m", "mnist_api", "db", "upgrade"], env=env, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=Path("models"))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--cassandra", action="store_true", help="also measure the Cassandra store")
    parser.add_argument("--work", type=Path, default=Path("var/bench"))
    parser.add_argument(
        "--only", nargs="+", help="run only these scenarios (no target check)", metavar="NAME"
    )
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    requests = requests_for(500)
    keyspace = f"mnist_bench_{secrets.token_hex(3)}"
    if args.cassandra:
        migrate(keyspace)
        cassandra_env = {
            "MNIST_API_STORE": "cassandra",
            "MNIST_API_CASSANDRA_KEYSPACE": keyspace,
            "MNIST_API_CASSANDRA_CONSISTENCY": "ONE",
        }
        overrides: dict[str, object] = {
            "store": "cassandra",
            "cassandra_keyspace": keyspace,
            "cassandra_consistency": "ONE",
        }
        asyncio.run(store_latency(overrides, 1000))
        asyncio.run(store_latency({"sqlite_path": args.work / "store.sqlite3"}, 1000))
        print()

    base = {"MNIST_API_MODEL_PATH": str(args.model)}
    scenarios: list[tuple[str, dict[str, str], list[int]]] = [
        ("predict", {"MNIST_API_INFERENCE_MODE": "predict"}, [64]),
        ("ceiling", {"MNIST_API_INFERENCE_MODE": "off", "MNIST_API_STORE": "none"}, [64, 16]),
        ("batched", {}, [64, 16]),
    ]
    if args.cassandra:
        scenarios.append(("cassandra", cassandra_env, [64, 16]))
    results: dict[tuple[str, int], tuple[float, Stats]] = {}
    if args.only:
        scenarios = [s for s in scenarios if s[0] in args.only]
    for name, env, client_counts in scenarios:
        sqlite = args.work / f"{name}-{secrets.token_hex(3)}.sqlite3"
        server = Server(
            base | {"MNIST_API_SQLITE_PATH": str(sqlite)} | env, args.work / f"{name}.log"
        )
        try:
            for clients in client_counts:
                stats = asyncio.run(drive(server.port, requests, clients, args.seconds))
                results[(name, clients)] = (report(name, clients, args.seconds, stats), stats)
        finally:
            server.stop()

    if args.only:
        return 0
    batched = results[("batched", 64)][0]
    baseline = results[("predict", 64)][0]
    ceiling = results[("ceiling", 64)][0]
    p99_16 = results[("batched", 16)][1].pct(99)
    print()
    checks = [
        (
            f"batched / predict at 64 clients = {batched / baseline:.1f}x (target >= 5x)",
            batched >= 5 * baseline,
        ),
        (
            f"batched / ceiling at 64 clients = {batched / ceiling * 100:.0f}% (target >= 50%)",
            batched >= 0.5 * ceiling,
        ),
        (f"batched p99 at 16 clients = {p99_16:.1f} ms (target <= 50 ms)", p99_16 <= 50),
    ]
    if args.cassandra:
        cass = results[("cassandra", 64)][0]
        print(f"cassandra / sqlite throughput at 64 clients = {cass / batched * 100:.0f}%")
    for text, ok in checks:
        print(f"{'met   ' if ok else 'MISSED'} {text}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
