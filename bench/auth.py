"""What authentication adds to a request.

    .venv/bin/python bench/auth.py --model models [--seconds 10]

1. In process, without HTTP: ``KeyService.authenticate`` with the key in the worker's cache (what
   nearly every request costs), with the cache off (a SQLite read by id, once per key and worker
   every ``MNIST_API_KEY_CACHE_S``), and ``TokenBuckets.take`` (the rate limit in shared memory).
2. Over HTTP, the same cheap request, ``GET /v1/predictions/{id}`` (no model, one SQLite read),
   from wrk (8 keep-alive connections, one thread) against one worker with authentication off
   and one with a key (authentication, the scope check and the rate limit), in alternation:
   throughput and p50/p99, and the difference.

Both runs use the same server settings, the same store file layout and the same request; the
difference is the cost of the key.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api import Server  # bench/api.py: the server as the other benchmarks start it

WRK_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
WRK_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)


def micro(work: Path) -> None:
    from mnist_api.kernel.ratelimit import TokenBuckets
    from mnist_api.kernel.settings import load_settings
    from mnist_api.kernel.sqlite import SqliteDatabase
    from mnist_api.keys import KeyService, Scope, open_key_repository

    async def run() -> None:
        database = SqliteDatabase(work / "micro.sqlite3")
        await database.open()
        buckets = TokenBuckets()
        try:
            repository = open_key_repository(database)
            scopes = frozenset({Scope.READ})
            cached = KeyService(load_settings(key_cache_s=300), repository, buckets)
            uncached = KeyService(load_settings(key_cache_s=0), repository, buckets)
            _, secret = await cached.create("bench", scopes, rate=1e6, burst=10**9)
            principal = await cached.authenticate(secret)

            async def timed(call: object, n: int) -> list[float]:
                out = []
                for _ in range(n):
                    started = time.perf_counter()
                    await call()  # type: ignore[operator]
                    out.append((time.perf_counter() - started) * 1e6)
                return out

            figures = {
                "authenticate, key cached": await timed(lambda: cached.authenticate(secret), 20000),
                "authenticate, SQLite read": await timed(
                    lambda: uncached.authenticate(secret), 2000
                ),
                "rate limit (shared buckets)": await timed(lambda: cached.limit(principal), 20000),
            }
            for name, values in figures.items():
                values.sort()
                p99 = values[int(len(values) * 0.99)]
                print(
                    f"{name:30} p50 {statistics.median(values):7.1f} us  p99 {p99:7.1f} us",
                    flush=True,
                )
        finally:
            buckets.close()
            await database.close()

    asyncio.run(run())


def seconds_of(value: str, unit: str) -> float:
    return float(value) / {"us": 1e6, "ms": 1e3, "s": 1.0}[unit]


def wrk(url: str, seconds: float, headers: list[str]) -> tuple[float, float, float]:
    """Requests/s, p50 and p99 (ms) of wrk on one URL."""
    options = [item for header in headers for item in ("-H", header)]
    command = ["wrk", "-t1", "-c8", f"-d{round(seconds)}s", "--latency", *options, url]
    subprocess.run([*command[:3], "-d3s", *command[4:]], capture_output=True, check=True)
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    found = {q: seconds_of(v, u) * 1000 for q, v, u in WRK_LATENCY.findall(output)}
    rate = WRK_RATE.search(output)
    assert rate is not None, output
    assert {"50", "99"} <= set(found), output
    assert "Non-2xx" not in output, output
    return float(rate.group(1)), found["50"], found["99"]


def over_http(model: Path, work: Path, seconds: float, rounds: int) -> None:
    """Both servers up at once; wrk alternates between them, ``rounds`` times each, so that
    drift in the machine's speed falls on both alike; medians of the rounds."""
    digit = Path(__file__).resolve().parents[1] / "tests" / "data" / "golden" / "digit-7.png"
    servers: dict[str, Server] = {}
    targets: dict[str, tuple[str, list[str]]] = {}
    try:
        for mode in ("off", "required"):
            env = {
                "MNIST_API_MODEL_PATH": str(model),
                "MNIST_API_SQLITE_PATH": str(work / f"http-{mode}.sqlite3"),
                "MNIST_API_AUTH": mode,
            }
            headers = []
            if mode == "required":
                made = subprocess.run(
                    [sys.executable, "-m", "mnist_api", "keys", "create", "--name", "bench",
                     "--scopes", "predict,read", "--rate", "10000/s", "--burst", "1000000"],
                    env=env | {"PATH": "/usr/bin:/bin"},
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                headers = [f"Authorization: Bearer {made.stdout.strip()}"]
            servers[mode] = Server(env, work / f"http-{mode}.log", workers=1)
            base = f"http://127.0.0.1:{servers[mode].port}"
            auth = dict(h.split(": ", 1) for h in headers)
            created = httpx.post(
                f"{base}/v1/predictions", files={"file": ("7.png", digit.read_bytes())},
                headers=auth, timeout=30,
            )  # fmt: skip
            assert created.status_code == 201, created.text
            targets[mode] = (f"{base}/v1/predictions/{created.json()['id']}", headers)
        runs: dict[str, list[tuple[float, float, float]]] = {"off": [], "required": []}
        for _ in range(rounds):
            for mode, (url, headers) in targets.items():
                runs[mode].append(wrk(url, seconds, headers))
    finally:
        for server in servers.values():
            server.stop()
    medians = {}
    for mode, results in runs.items():
        rate, p50, p99 = (statistics.median(r[i] for r in results) for i in range(3))
        medians[mode] = (rate, p50, p99)
        label = "no key (auth off)" if mode == "off" else "with a key"
        print(
            f"GET /v1/predictions/ID, {label:18} {rate:8.0f} req/s  p50 {p50:6.2f} ms  "
            f"p99 {p99:6.2f} ms  (median of {rounds} runs of {seconds:g} s)",
            flush=True,
        )
    (off_rate, off50, off99), (on_rate, on50, on99) = medians["off"], medians["required"]
    print(
        f"added by the key: p50 {on50 - off50:+.2f} ms, p99 {on99 - off99:+.2f} ms, "
        f"throughput {(on_rate / off_rate - 1) * 100:+.1f}%"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=Path("models"))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-auth-") as tmp:
        micro(Path(tmp))
        over_http(args.model, Path(tmp), args.seconds, args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
