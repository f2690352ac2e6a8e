"""What tracing costs: off (the default) and on, exporting every request's spans over OTLP.

    MNIST_DATA_DIR=../shared/data/mnist .venv/bin/python bench/tracing.py --model models \\
        [--seconds 15] [--clients 16] [--rounds 3]

1. In process: what the off path adds to one upload (the checks, the no-op span around the
   store write, the clock readings that on-tracing would use), in nanoseconds, against the
   service's own time per upload at the measured throughput.
2. Through HTTP: ``mnist-api serve`` (1 worker, SQLite, authentication off) with tracing off,
   then on (``MNIST_API_OTLP_ENDPOINT`` set to a receiver in this process that takes and
   drops the spans), then on with one request in ten sampled, alternating ``--rounds`` times;
   throughput and p50/p99 of each (wrk when installed, as ``bench/api.py``).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import threading
import time
import timeit
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from api import Result, Server, drive, drive_wrk, requests_for
from mnist_api.kernel.tracing import Tracing


def off_path_ns(repeat: int = 200_000) -> float:
    """The work tracing adds to one upload when it is off, timed as the service does it."""
    tracing = Tracing.off()

    def one_upload() -> None:
        # preprocessing and the batcher read the clock three times each
        for _ in range(6):
            time.time_ns()
        if tracing.on:
            raise AssertionError
        if tracing.on:
            raise AssertionError
        with tracing.span("store write"):
            pass

    seconds = min(timeit.repeat(one_upload, number=repeat, repeat=5))
    return seconds / repeat * 1e9


class Sink:
    """An OTLP/HTTP receiver that answers 200 and keeps nothing."""

    def __init__(self) -> None:
        self.requests = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                sink.requests += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=Path("models"))
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("var/bench/tracing"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    bodies_dir = args.work / "bodies"
    requests = requests_for(500, bodies_dir)
    sink = Sink()
    base = {
        "MNIST_API_MODEL_PATH": str(args.model.resolve()),
        "MNIST_API_AUTH": "off",
        "MNIST_API_DRAIN_DELAY_S": "0",
    }
    on = {"MNIST_API_OTLP_ENDPOINT": sink.url}
    modes = {"off": {}, "on": on, "on, 10%": on | {"MNIST_API_TRACE_SAMPLE_RATIO": "0.1"}}
    results: dict[str, list[Result]] = {mode: [] for mode in modes}
    for round_ in range(args.rounds):
        for mode, extra in modes.items():
            name = mode.replace(", ", "-").replace("%", "")
            env = base | extra | {"MNIST_API_SQLITE_PATH": str(args.work / f"{name}.sqlite3")}
            server = Server(env, args.work / f"{name}.log", 1)
            try:
                if shutil.which("wrk"):
                    result = drive_wrk(
                        server.port, bodies_dir, len(requests), args.clients, args.seconds
                    )
                else:
                    import asyncio

                    result = asyncio.run(drive(server.port, requests, args.clients, args.seconds))
            finally:
                server.stop()
            results[mode].append(result)
            print(
                f"round {round_ + 1} tracing {mode:7}: {result.throughput:7.1f} req/s, "
                f"p50 {result.p50:5.1f} ms, p99 {result.p99:5.1f} ms, errors {result.errors}",
                flush=True,
            )

    def median(mode: str, field: str) -> float:
        values = [r.throughput if field == "rps" else getattr(r, field) for r in results[mode]]
        return statistics.median(values)

    off_rps = median("off", "rps")
    added = off_path_ns()
    per_upload_us = 1e6 / off_rps  # one worker: the service's time per upload at full load
    print(
        f"\ntracing off: {off_rps:.1f} req/s, p50 {median('off', 'p50'):.1f} ms, p99 "
        f"{median('off', 'p99'):.1f} ms (median of {args.rounds} rounds)"
    )
    for mode in ("on", "on, 10%"):
        rps = median(mode, "rps")
        print(
            f"tracing {mode + ':':8} {rps:.1f} req/s ({rps / off_rps - 1:+.1%}), p50 "
            f"{median(mode, 'p50'):.1f} ms, p99 {median(mode, 'p99'):.1f} ms"
        )
    print(f"{sink.requests} OTLP exports received")
    print(
        f"the off path adds {added:.0f} ns to an upload: {added / (per_upload_us * 1000):.3%} of "
        f"the {per_upload_us:.0f} µs the service spends on one at full load"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
