"""Model swaps under load: zero failed requests, and the latency while a swap happens.

    MNIST_DATA_DIR=../shared/data/mnist .venv/bin/python bench/rollout.py \\
        --model models/A --other models/B [--seconds 40] [--every 5] [--clients 32]

Serves a models folder holding the two artifacts with ``mnist-api serve --workers 2`` (SQLite,
authentication off, ``MNIST_API_MODEL_POLL_S=0.5``), drives keep-alive clients uploading real
MNIST test digits, and points ``LATEST`` at the other artifact every ``--every`` seconds. Each
answer is recorded with its time, status, latency and the model version that computed it. It
prints the failed requests (any status but 201, any broken connection: the target is zero), the
p50/p99 latency in the two seconds after each swap against the rest of the run, how long the
workers took to answer with the new model, and whether any answer came from the old model after
the new one had answered on the same worker's connection.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api import Server, exchange, requests_for

SWAP_WINDOW_S = 2.0


@dataclass
class Answer:
    at: float  # when the request was sent (perf_counter)
    latency: float
    status: int
    version: str
    connection: int


@dataclass
class Log:
    answers: list[Answer] = field(default_factory=list)
    broken: int = 0  # connections that failed mid-request


async def client(
    port: int, requests: list[tuple[bytes, int]], index: int, until: float, log: Log
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = index * 41
    try:
        while time.perf_counter() < until:
            request, _ = requests[i % len(requests)]
            i += 1
            started = time.perf_counter()
            status, body = await exchange(reader, writer, request)
            version = json.loads(body).get("model_version", "") if status == 201 else ""
            log.answers.append(
                Answer(started, time.perf_counter() - started, status, version, index)
            )
    except (OSError, asyncio.IncompleteReadError):
        log.broken += 1
    finally:
        writer.close()


async def swapper(root: Path, versions: list[str], every: float, until: float) -> list[float]:
    """Point LATEST at the other artifact every ``every`` seconds; when each swap happened."""
    swaps = []
    current = 0
    while time.perf_counter() + every < until:
        await asyncio.sleep(every)
        current = 1 - current
        temporary = root / ".LATEST.tmp"
        temporary.write_text(versions[current] + "\n")
        temporary.replace(root / "LATEST")
        swaps.append(time.perf_counter())
    return swaps


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


async def run(port: int, requests: list[tuple[bytes, int]], args: argparse.Namespace,
              root: Path, versions: list[str]) -> tuple[Log, list[float]]:  # fmt: skip
    warm = Log()
    until = time.perf_counter() + 3
    await asyncio.gather(*(client(port, requests, c, until, warm) for c in range(args.clients)))
    log = Log()
    until = time.perf_counter() + args.seconds
    results = await asyncio.gather(
        swapper(root, versions, args.every, until),
        *(client(port, requests, c, until, log) for c in range(args.clients)),
    )
    return log, results[0]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, required=True, help="an artifact")
    parser.add_argument("--other", type=Path, required=True, help="another artifact")
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between swaps")
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()
    from mnist_core.artifact import read_metadata

    work = Path(tempfile.mkdtemp(prefix="bench-rollout-"))
    root = work / "models"
    versions = []
    for artifact in (args.model, args.other):
        directory, meta = read_metadata(artifact)
        shutil.copytree(directory, root / meta.version)
        versions.append(meta.version)
    if versions[0] == versions[1]:
        print("--model and --other are the same artifact", file=sys.stderr)
        return 2
    (root / "LATEST").write_text(versions[0] + "\n")
    requests = requests_for(1000, work / "bodies")
    env = {
        "MNIST_API_MODEL_PATH": str(root),
        "MNIST_API_AUTH": "off",
        "MNIST_API_SQLITE_PATH": str(work / "rollout.sqlite3"),
        "MNIST_API_MODEL_POLL_S": "0.5",
    }
    server = Server(env, work / "server.log", 2)
    try:
        log, swaps = asyncio.run(run(server.port, requests, args, root, versions))
        metrics = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=10).text
    finally:
        server.stop()
    swapped = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith('mnist_model_reloads_total{outcome="swapped"}')
    )

    answers = log.answers
    failed = [a for a in answers if a.status != 201]
    near = [a.latency for a in answers if any(0 <= a.at - s < SWAP_WINDOW_S for s in swaps)]
    far = [a.latency for a in answers if not any(0 <= a.at - s < SWAP_WINDOW_S for s in swaps)]
    # Seconds from each swap until every answer sent after that moment came from the new model.
    settled = []
    for n, moment in enumerate(swaps):
        target = versions[(n + 1) % 2]
        after = [
            a for a in answers if a.at >= moment and (n + 1 == len(swaps) or a.at < swaps[n + 1])
        ]
        stale = [a.at for a in after if a.version != target]
        settled.append((max(stale) - moment) if stale else 0.0)
    # Per connection, after it first saw the new model, an old answer again would be a mix-up.
    mixed = 0
    for n, moment in enumerate(swaps):
        target, end = versions[(n + 1) % 2], swaps[n + 1] if n + 1 < len(swaps) else float("inf")
        for c in range(args.clients):
            mine = sorted((a for a in answers if a.connection == c and moment <= a.at < end),
                          key=lambda a: a.at)  # fmt: skip
            first = next((k for k, a in enumerate(mine) if a.version == target), None)
            if first is not None:
                mixed += sum(a.version != target for a in mine[first:])
    rate = len(answers) / args.seconds
    print(f"{len(answers):,} uploads in {args.seconds:.0f} s ({rate:,.0f}/s, {args.clients} "
          f"connections, 2 workers), {len(swaps)} swaps")  # fmt: skip
    print(f"between {versions[0]} and {versions[1]}")
    print(f"failed requests: {len(failed)} (statuses {sorted({a.status for a in failed})}), "
          f"broken connections: {log.broken}")  # fmt: skip
    print(f"latency within {SWAP_WINDOW_S:.0f} s after a swap: p50 {pct(near, 50):.1f} ms, "
          f"p99 {pct(near, 99):.1f} ms ({len(near):,} uploads); the rest of the run: "
          f"p50 {pct(far, 50):.1f} ms, p99 {pct(far, 99):.1f} ms")  # fmt: skip
    print("from a swap until every answer came from the new model: "
          + ", ".join(f"{s:.2f} s" for s in settled))  # fmt: skip
    print(f"answers from the old model after the new one had answered on the same connection: "
          f"{mixed}")  # fmt: skip
    print(f"models swapped in by the workers (mnist_model_reloads_total): {swapped:.0f}")
    ok = not failed and not log.broken and len(swaps) > 0
    print("met   " if ok else "MISSED", "zero failed requests across the swaps")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
