"""More than one instance: throughput and latency directly and behind HAProxy, and during a
rolling restart, on this machine in one run.

    MNIST_DATA_DIR=../shared/data/mnist .venv/bin/python bench/fleet.py --model models \\
        [--seconds 15] [--clients 16]

Scenarios, each with keep-alive clients uploading MNIST test digits as PNG for a fixed time
(wrk when installed, as ``bench/api.py``), the service as shipped (batched LiteRT, SQLite store,
authentication off), one worker per instance unless said:

- direct, 1 instance            ``mnist-api serve`` on its own port, clients straight to it;
- direct, 1 instance, 2 workers the same with two workers (one per core): what one process
                                 with ``SO_REUSEPORT`` workers makes of the machine;
- HAProxy, 1 instance           ``scripts/fleet --instances 1``: what the balancer costs;
- HAProxy, 2 instances          ``scripts/fleet --instances 2``: the same two cores, as two
                                 instances;
- rolling restart               2 instances behind HAProxy, Python clients (each answer timed
                                 and checked) while ``scripts/fleet`` restarts both one at a time
                                 (SIGHUP): requests, failures, p50/p99 before and during.

The load generator runs on the same two cores as everything else, so the absolute figures are
the machine's; the ratios are what the balancer and the second instance change.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from api import BOUNDARY, Result, Server, drive, drive_wrk, requests_for

ROOT = Path(__file__).resolve().parent.parent


class Fleet:
    """``scripts/fleet`` in a child process, until stopped."""

    def __init__(self, env: dict[str, str], instances: int, folder: Path, port: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.output = folder / "fleet.out"
        full = {k: v for k, v in os.environ.items() if not k.startswith("MNIST_API_")} | env
        with self.output.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    str(ROOT / "scripts" / "fleet"),
                    *("--instances", str(instances), "--port", str(port)),
                    *("--first-port", str(port + 1), "--dir", str(folder)),
                ],
                env=full,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.wait_for("fleet ready")

    def text(self) -> str:
        return self.output.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, line: str, count: int = 1) -> None:
        deadline = time.monotonic() + 240
        while self.text().count(line) < count:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"fleet: no {line!r}:\n{self.text()}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(90)


async def during_restart(
    fleet: Fleet, requests: list[tuple[bytes, int]], clients: int
) -> dict[str, float]:
    """Clients uploading through the balancer from 5 s before a rolling restart to 3 s after."""
    outcomes: list[tuple[float, float, int]] = []  # sent, latency, status (0: no answer)
    stop = asyncio.Event()

    async def client(offset: int) -> None:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{fleet.port}", timeout=60) as http:
            i = offset
            while not stop.is_set():
                raw = requests[i % len(requests)][0]
                i += 1
                body = raw.split(b"\r\n\r\n", 1)[1]
                sent = time.monotonic()
                try:
                    answer = await http.post(
                        "/v1/predictions",
                        content=body,
                        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
                    )
                    status = answer.status_code
                except httpx.HTTPError:
                    status = 0
                outcomes.append((sent, time.monotonic() - sent, status))

    tasks = [asyncio.create_task(client(c * 41)) for c in range(clients)]
    await asyncio.sleep(5)
    began = time.monotonic()
    fleet.process.send_signal(signal.SIGHUP)
    await asyncio.to_thread(fleet.wait_for, "rolling restart done")
    ended = time.monotonic()
    await asyncio.sleep(3)
    stop.set()
    await asyncio.gather(*tasks)

    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000 if ordered else 0.0

    before = [lat for sent, lat, _ in outcomes if sent < began]
    restarting = [lat for sent, lat, _ in outcomes if began <= sent < ended]
    return {
        "requests": len(outcomes),
        "failed": sum(status != 201 for _, _, status in outcomes),
        "restart_s": ended - began,
        "before_p50": statistics.median(before) * 1000,
        "before_p99": pct(before, 0.99),
        "during_p50": statistics.median(restarting) * 1000,
        "during_p99": pct(restarting, 0.99),
        "during_max": max(restarting) * 1000,
        "during_requests": len(restarting),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=Path("models"))
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--work", type=Path, default=Path("var/bench/fleet"))
    parser.add_argument(
        "--port", type=int, default=18400, help="the balancer's; the instances take the next"
    )
    args = parser.parse_args()
    if shutil.which("haproxy") is None and not Path("/usr/sbin/haproxy").exists():
        sys.exit("bench/fleet.py: HAProxy is needed (apt-get install haproxy)")
    args.work.mkdir(parents=True, exist_ok=True)
    bodies_dir = args.work / "bodies"
    requests = requests_for(500, bodies_dir)
    env = {
        "MNIST_API_MODEL_PATH": str(args.model.resolve()),
        "MNIST_API_AUTH": "off",
        "MNIST_API_SQLITE_PATH": str((args.work / "fleet.sqlite3").resolve()),
    }

    def load(port: int) -> Result:
        if shutil.which("wrk"):
            return drive_wrk(port, bodies_dir, len(requests), args.clients, args.seconds)
        return asyncio.run(drive(port, requests, args.clients, args.seconds))

    print(f"{args.clients} clients, {args.seconds:g} s each, after 5 s of warm-up", flush=True)
    results: dict[str, Result] = {}
    for name, workers in (("direct, 1 instance", 1), ("direct, 1 instance, 2 workers", 2)):
        server = Server(env, args.work / f"direct-{workers}.log", workers)
        try:
            results[name] = load(server.port)
        finally:
            server.stop()
        print(f"{name}: {results[name].throughput:.1f} req/s", flush=True)
    port = args.port
    for instances in (1, 2):
        name = f"HAProxy, {instances} instance{'s' if instances > 1 else ''}"
        fleet = Fleet(env, instances, args.work / f"fleet-{instances}", port)
        try:
            results[name] = load(fleet.port)
        finally:
            fleet.stop()
        print(f"{name}: {results[name].throughput:.1f} req/s", flush=True)
    fleet = Fleet(env, 2, args.work / "fleet-restart", port)
    try:
        figures = asyncio.run(during_restart(fleet, requests, args.clients))
    finally:
        fleet.stop()

    print("\nscenario                          req/s     p50 ms   p99 ms  errors")
    for name, result in results.items():
        print(
            f"{name:30} {result.throughput:8.1f} {result.p50:9.1f} {result.p99:8.1f} "
            f"{result.errors:7d}"
        )
    direct = results["direct, 1 instance"].throughput
    two_workers = results["direct, 1 instance, 2 workers"].throughput
    behind_one = results["HAProxy, 1 instance"].throughput
    behind_two = results["HAProxy, 2 instances"].throughput
    print(
        f"\nHAProxy in front of one instance: {behind_one / direct:.0%} of direct; two "
        f"instances behind it: {behind_two / direct:.2f}x one instance direct, "
        f"{behind_two / two_workers:.0%} of one instance with two workers"
    )
    print(
        f"rolling restart of 2 instances ({figures['restart_s']:.1f} s, "
        f"{figures['requests']:.0f} requests, {figures['during_requests']:.0f} during it): "
        f"{figures['failed']:.0f} failed; p50/p99 before {figures['before_p50']:.1f}/"
        f"{figures['before_p99']:.1f} ms, during {figures['during_p50']:.1f}/"
        f"{figures['during_p99']:.1f} ms (max {figures['during_max']:.1f} ms)"
    )
    return 0 if figures["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
