"""Fast and light: the service's throughput, latency, memory and start next to what the machine
can do, in one run.

    MNIST_DATA_DIR=../shared/data/mnist .venv/bin/python bench/serving.py --model models \
        [--image mnist-service:check] [--seconds 15]

1. The ceiling: a bare FastAPI endpoint taking the same multipart upload and answering a small
   JSON (``bench/bare_app.py``), with 1 and 2 workers, on the service's own worker sockets; and
   the same endpoint also decoding and preprocessing each upload (``--preprocess``): the least
   that any service answering these uploads must do.
2. The service as shipped (LiteRT, SQLite, authentication off as ``scripts/run`` serves): with 1
   and 2 workers at 64 connections, and p99 at 16 connections with 2 workers. wrk uploads the
   first 1,000 MNIST test digits as 28x28 PNGs in turn, on the same two cores.
3. Memory: each worker's resident set after warm-up, and again after 100,000 uploads.
4. Start: seconds from ``mnist-api serve`` to ``/readyz`` answering 200, with the model present.
5. Accuracy: Python clients upload MNIST test digits and check each answer's digit.
6. The API image's size (``--image``, when Docker is there) and the model's training figures
   from its artifact (test accuracy, how it was chosen, training time).

Targets (printed as met or MISSED): 2 workers >= 4,000 req/s and >= 33% of the 2-worker ceiling;
1 worker >= 2,000 req/s; p99 at 16 connections <= 12 ms; <= 150 MB per worker after warm-up,
no growth after 100,000 uploads; image <= 400 MB; ready within 3 s; test accuracy >= 99.6%
with <= 10 minutes of training.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api import Result, Server, drive, drive_wrk, free_port, report, requests_for

UPLOADS = 1000
MEMORY_UPLOADS = 100_000


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def workers_of(pid: int) -> list[int]:
    """The worker processes under a server process (itself, with one worker)."""
    children = subprocess.run(
        ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    # multiprocessing's spawn adds a resource tracker: a worker is a child that listens.
    workers = [int(c) for c in children if "resource_tracker" not in _cmdline(int(c))]
    return workers or [pid]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class Bare:
    def __init__(self, workers: int, log: Path, *, preprocess: bool = False) -> None:
        self.port = free_port()
        script = Path(__file__).with_name("bare_app.py")
        command = [sys.executable, str(script), "--port", str(self.port)]
        command += ["--workers", str(workers), *(["--preprocess"] if preprocess else [])]
        self.log = log.open("wb")
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/docs", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"the bare app did not start; see {log}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


def ready_seconds(env: dict[str, str], work: Path) -> float:
    started = time.monotonic()
    server = Server(env, work / "start.log", 1)
    seconds = time.monotonic() - started
    server.stop()
    return seconds


def check(results: list[tuple[str, bool]], text: str, ok: bool) -> None:
    results.append((text, ok))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=Path("models"))
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--image", help="the API image to measure (docker image inspect)")
    parser.add_argument("--skip-memory", action="store_true", help="leave out the 100,000 uploads")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("bench/serving.py needs wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    bodies = work / "bodies"
    requests = requests_for(UPLOADS, bodies)
    targets: list[tuple[str, bool]] = []

    def wrk(port: int, clients: int, seconds: float | None = None) -> Result:
        return drive_wrk(port, bodies, UPLOADS, clients, seconds or args.seconds)

    ceiling: dict[int, Result] = {}
    floor: dict[int, Result] = {}  # the bare endpoint that also preprocesses each upload
    for workers in (1, 2):
        for preprocess, results in ((False, ceiling), (True, floor)):
            name = f"bare{'+prep' if preprocess else ''}/{workers}w"
            bare = Bare(workers, work / f"{name.replace('/', '-')}.log", preprocess=preprocess)
            try:
                results[workers] = wrk(bare.port, 64)
                report(name, 64, results[workers])
            finally:
                bare.stop()

    env = {
        "MNIST_API_MODEL_PATH": str(args.model),
        "MNIST_API_AUTH": "off",
        "MNIST_API_SQLITE_PATH": str(work / "service.sqlite3"),
    }
    service: dict[tuple[int, int], Result] = {}
    memory: dict[str, list[float]] = {}
    for workers in (1, 2):
        server = Server(env | {"MNIST_API_SQLITE_PATH": str(work / f"s{workers}.sqlite3")},
                        work / f"service-{workers}.log", workers)  # fmt: skip
        try:
            for clients in (64, 16):
                service[(workers, clients)] = wrk(server.port, clients)
                report(f"service/{workers}w", clients, service[(workers, clients)])
            if workers == 2:
                pids = workers_of(server.process.pid)
                memory["after warm-up"] = [rss_mb(p) for p in pids]
                if not args.skip_memory:
                    done = sum(r.requests for (w, _), r in service.items() if w == 2)
                    rate = service[(2, 64)].throughput
                    more = max(0.0, (MEMORY_UPLOADS - done) / rate)
                    extra = wrk(server.port, 64, more + 5)
                    total = done + extra.requests
                    memory[f"after {total:,} uploads"] = [rss_mb(p) for p in pids]
                accuracy = asyncio.run(drive(server.port, requests, 16, 5))
        finally:
            server.stop()
    start = min(ready_seconds(env, work) for _ in range(3))

    print()
    for when, values in memory.items():
        print(f"resident memory per worker {when}: " + ", ".join(f"{v:.0f} MB" for v in values))
    print(f"ready after start: {start:.2f} s (best of 3)")
    print(f"accuracy on uploaded MNIST test digits: {accuracy.accuracy:.2f}%")
    image_mb = None
    if args.image and shutil.which("docker"):
        size = subprocess.run(
            ["docker", "image", "inspect", "-f", "{{.Size}}", args.image],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        image_mb = int(size) / 1e6 if size else None
        print(f"image {args.image}: {image_mb:.0f} MB" if image_mb else f"no image {args.image}")
    from mnist_core.artifact import read_metadata

    _, meta = read_metadata(args.model)
    validation = (
        f"{meta.validation_accuracy:.2%} validation ({meta.validation_examples:,} held out)"
        if meta.validation_accuracy is not None
        else "no validation split"
    )
    print(
        f"model {meta.version}: {meta.test_accuracy:.2%} test, {validation}, "
        f"{meta.training_seconds:.0f} s of training, {meta.hyperparameters.epochs} epochs"
    )
    print()
    two, one = service[(2, 64)].throughput, service[(1, 64)].throughput
    check(targets, f"2 workers, 64 connections: {two:,.0f} req/s (>= 4,000)", two >= 4000)
    share = two / ceiling[2].throughput
    check(targets, f"2 workers: {share:.0%} of the 2-worker ceiling (>= 33%)", share >= 0.33)
    check(targets, f"1 worker, 64 connections: {one:,.0f} req/s (>= 2,000)", one >= 2000)
    p99 = service[(2, 16)].p99
    check(targets, f"p99 at 16 connections: {p99:.1f} ms (<= 12 ms)", p99 <= 12)
    warm = max(memory["after warm-up"])
    check(targets, f"memory per worker after warm-up: {warm:.0f} MB (<= 150 MB)", warm <= 150)
    if len(memory) > 1:
        grown = max(b - a for a, b in zip(*memory.values(), strict=True))
        check(targets, f"growth after the uploads: {grown:+.0f} MB (none)", grown <= 10)
    check(targets, f"ready in {start:.2f} s (<= 3 s)", start <= 3)
    if image_mb is not None:
        check(targets, f"image {image_mb:.0f} MB (<= 400 MB)", image_mb <= 400)
    trained = meta.test_accuracy >= 0.996 and meta.training_seconds <= 600
    check(
        targets,
        f"training: {meta.test_accuracy:.2%} in {meta.training_seconds:.0f} s (>= 99.6%, <= 600 s)",
        trained,
    )
    for text, ok in targets:
        print(f"{'met   ' if ok else 'MISSED'} {text}")
    print(
        "the bare endpoint that also decodes and preprocesses each upload on its event loop "
        "(no model, store, keys or metrics): "
        + ", ".join(f"{floor[w].throughput:,.0f} req/s with {w} worker(s)" for w in (1, 2))
    )
    print(
        json.dumps(
            {
                "ceiling": {w: round(r.throughput) for w, r in ceiling.items()},
                "bare_with_preprocessing": {w: round(r.throughput) for w, r in floor.items()},
            }
        )
    )
    return 0 if all(ok for _, ok in targets) else 1


if __name__ == "__main__":
    raise SystemExit(main())
