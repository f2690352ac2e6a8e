"""API throughput and latency, and store latency, in one run.

    MNIST_DATA_DIR=../shared/data/mnist .venv/bin/python bench/api.py --model models [--cassandra]

Starts ``mnist-api serve`` on 127.0.0.1 once per scenario and drives concurrent keep-alive
clients that upload real MNIST test digits as PNG for a fixed time, then prints throughput,
p50/p95/p99 latency, errors and accuracy. Scenarios:

- batched   the service as shipped: batched inference by LiteRT, SQLite store;
- tensorflow the same with the TensorFlow runtime (``MNIST_API_RUNTIME=tensorflow``);
- unbatched the same without batching (batches of one, no wait): what the batcher is worth;
- predict   (a) the original way: one ``model.predict`` per request, no batching, SQLite store;
- ceiling   (b) the same app with inference and storage switched off;
- cassandra the service as shipped on the local Cassandra node (with --cassandra);
- keys      the service as shipped with API keys required, uploading with a key.

Every scenario but ``keys`` runs with authentication off (as ``scripts/run`` serves).

Targets on a 2-core machine: batched at 64 clients >= 5x predict and >= 50% of ceiling;
p99 <= 50 ms at 16 clients. With --cassandra it also measures the stores' own write and read
latency (p50/p99). The load generator (wrk when installed, else Python clients that also
check accuracy) runs on the same two cores as the server.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

BOUNDARY = "benchboundary7d1f"


@dataclass
class Result:
    requests: int
    seconds: float
    p50: float
    p95: float
    p99: float
    errors: int
    accuracy: float | None  # None when the load generator cannot check answers (wrk)

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    correct: int = 0
    statuses: dict[int, int] = field(default_factory=dict)

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies, q) * 1000) if self.latencies else float("nan")


def requests_for(n: int, bodies_dir: Path) -> list[tuple[bytes, int]]:
    """HTTP requests uploading the first ``n`` MNIST test digits as PNG, with their labels; the
    multipart bodies are also written to ``bodies_dir`` for wrk."""
    from mnist_train.data import load_mnist

    data = load_mnist()
    bodies_dir.mkdir(parents=True, exist_ok=True)
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
        (bodies_dir / f"{index}.bin").write_bytes(body)
        head = (
            "POST /v1/predictions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        out.append((head + body, int(data.test_labels[index])))
    return out


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    """Send one HTTP/1.1 request on a keep-alive connection; the answer's status and body."""
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return int(head[9:12]), await reader.readexactly(length)


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
            status, body = await exchange(reader, writer, request)
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
) -> Result:
    """Python keep-alive clients: they also check every answer's digit."""
    warm = Stats()
    until = time.perf_counter() + 5
    await asyncio.gather(*(client(port, requests, c * 37, until, warm) for c in range(clients)))
    stats = Stats()
    until = time.perf_counter() + seconds
    await asyncio.gather(*(client(port, requests, c * 53, until, stats) for c in range(clients)))
    done = len(stats.latencies)
    return Result(
        done,
        seconds,
        stats.pct(50),
        stats.pct(95),
        stats.pct(99),
        stats.errors,
        stats.correct / max(1, done - stats.errors) * 100,
    )


WRK_LINE = re.compile(r"^WRK (.*)$", re.MULTILINE)


def drive_wrk(
    port: int, bodies_dir: Path, count: int, clients: int, seconds: float, key: str | None = None
) -> Result:
    """wrk (C, one thread): leaves more of the two cores to the server than Python clients."""
    script = Path(__file__).with_name("wrk_upload.lua")

    def run(duration: float) -> dict[str, float]:
        command = [
            "wrk", "-t1", "--timeout", "60s", f"-c{clients}", f"-d{round(duration)}s",
            "-s", str(script), f"http://127.0.0.1:{port}/v1/predictions",
            "--", str(bodies_dir), str(count), BOUNDARY, *([key] if key else []),
        ]  # fmt: skip
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        match = WRK_LINE.search(output)
        assert match, output
        return {k: float(v) for k, v in (kv.split("=") for kv in match.group(1).split())}

    run(5)  # warm-up: first requests build caches and connections
    w = run(seconds)
    return Result(
        int(w["requests"]),
        w["duration_us"] / 1e6,
        w["p50_ms"],
        w["p95_ms"],
        w["p99_ms"],
        int(w["status_errors"] + w["socket_errors"]),
        None,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, env: dict[str, str], log: Path, workers: int) -> None:
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
                "--workers",
                str(workers),
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


def report(name: str, clients: int, result: Result) -> None:
    accuracy = "n/a" if result.accuracy is None else f"{result.accuracy:5.1f}%"
    print(
        f"{name:10} {clients:3d} clients  {result.throughput:8.1f} req/s  "
        f"p50 {result.p50:7.1f} ms  p95 {result.p95:7.1f} ms  p99 {result.p99:7.1f} ms  "
        f"errors {result.errors:4d}  accuracy {accuracy}",
        flush=True,
    )


async def store_latency(settings_overrides: dict[str, object], n: int) -> None:
    """Write and read latency of a store itself, from Python, without HTTP."""
    import hashlib

    from mnist_api.kernel.databases import open_database
    from mnist_api.kernel.settings import load_settings
    from mnist_api.predictions.records import (
        HistoryQuery,
        ImageMeta,
        Owner,
        PredictionRecord,
        id_time,
        new_id,
    )
    from mnist_api.predictions.repository import open_repository

    settings = load_settings(auth="off", **settings_overrides)  # type: ignore[arg-type]
    database = open_database(settings)
    await database.open()
    store = open_repository(database, settings)
    await store.open()
    owner = Owner("anonymous")
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
                owner=owner.id,
            )
            started = time.perf_counter()
            await store.insert(record, image, owner)
            writes.append(time.perf_counter() - started)
            ids.append(pid)
        for pid in ids:
            started = time.perf_counter()
            await store.get(pid, None)
            reads.append(time.perf_counter() - started)
        for _ in range(50):
            started = time.perf_counter()
            await store.history(HistoryQuery(limit=20))
            pages.append(time.perf_counter() - started)
    finally:
        await store.close()
        await database.close()

    def ms(values: list[float], q: float) -> float:
        return float(np.percentile(values, q) * 1000)

    print(
        f"store {store.name:9}  "
        f"write p50 {ms(writes, 50):6.2f} ms  p99 {ms(writes, 99):6.2f} ms  |  "
        f"read by id p50 {ms(reads, 50):6.2f} ms  p99 {ms(reads, 99):6.2f} ms  |  "
        f"history page(20) p50 {ms(pages, 50):6.2f} ms  p99 {ms(pages, 99):6.2f} ms",
        flush=True,
    )


def new_key(env: dict[str, str]) -> str:
    """A key for the load generator, unlimited in practice, in the store ``env`` names."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("MNIST_API_")} | env
    command = [sys.executable, "-m", "mnist_api", "keys", "create", "--name", "bench"]
    command += ["--rate", "10000/s", "--burst", "100000"]
    made = subprocess.run(command, env=full, capture_output=True, text=True, check=True)
    return made.stdout.strip()


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
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="uvicorn workers, the same in every scenario (default: one per core)",
    )
    parser.add_argument("--cassandra", action="store_true", help="also measure the Cassandra store")
    parser.add_argument("--work", type=Path, default=Path("var/bench"))
    parser.add_argument(
        "--client",
        choices=["python", "wrk"],
        default="wrk" if shutil.which("wrk") else "python",
        help="load generator: wrk (apt-get install wrk; the default when present) or Python "
        "clients that also check each answer's digit",
    )
    parser.add_argument(
        "--only", nargs="+", help="run only these scenarios (no target check)", metavar="NAME"
    )
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    bodies_dir = args.work / "bodies"
    requests = requests_for(500, bodies_dir)
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

    base = {"MNIST_API_MODEL_PATH": str(args.model), "MNIST_API_AUTH": "off"}
    scenarios: list[tuple[str, dict[str, str], list[int]]] = [
        (
            "predict",
            {"MNIST_API_INFERENCE_MODE": "predict", "MNIST_API_RUNTIME": "tensorflow"},
            [64],
        ),
        ("ceiling", {"MNIST_API_INFERENCE_MODE": "off", "MNIST_API_STORE": "none"}, [64, 16]),
        ("batched", {}, [64, 16]),
        ("tensorflow", {"MNIST_API_RUNTIME": "tensorflow"}, [64, 16]),
        ("unbatched", {"MNIST_API_MAX_BATCH": "1", "MNIST_API_MAX_DELAY_MS": "0"}, [64, 16]),
        ("keys", {"MNIST_API_AUTH": "required"}, [64, 16]),
    ]
    if args.cassandra:
        scenarios.append(("cassandra", cassandra_env, [64, 16]))
    results: dict[tuple[str, int], Result] = {}
    if args.only:
        scenarios = [s for s in scenarios if s[0] in args.only]
    for name, env, client_counts in scenarios:
        sqlite = args.work / f"{name}-{secrets.token_hex(3)}.sqlite3"
        server_env = base | {"MNIST_API_SQLITE_PATH": str(sqlite)} | env
        key = new_key(server_env) if name == "keys" else None
        server = Server(server_env, args.work / f"{name}.log", args.workers)
        try:
            for clients in client_counts:
                if args.client == "wrk":
                    result = drive_wrk(
                        server.port, bodies_dir, len(requests), clients, args.seconds, key
                    )
                else:
                    sent = requests
                    if key is not None:
                        line = f"Authorization: Bearer {key}\r\n".encode()
                        host = b"Host: 127.0.0.1\r\n"
                        sent = [(r.replace(host, host + line, 1), d) for r, d in requests]
                    result = asyncio.run(drive(server.port, sent, clients, args.seconds))
                results[(name, clients)] = result
                report(name, clients, result)
        finally:
            server.stop()

    if args.only:
        return 0
    batched = results[("batched", 64)].throughput
    baseline = results[("predict", 64)].throughput
    ceiling = results[("ceiling", 64)].throughput
    p99_16 = results[("batched", 16)].p99
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
        cass = results[("cassandra", 64)].throughput
        print(f"cassandra / sqlite throughput at 64 clients = {cass / batched * 100:.0f}%")
    for text, ok in checks:
        print(f"{'met   ' if ok else 'MISSED'} {text}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
