"""Several workers: connections spread over them on purpose (one SO_REUSEPORT socket each),
counted from the kernel's own table, and ``/metrics`` describing the whole instance whichever
worker answers the scrape."""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.api.test_live_server import wait_for_workers
from tests.fixtures.servers import LiveServer, api_env

CONNECTIONS = 64
UPLOADS = 40


def established(port: int) -> set[int]:
    """Socket inodes of the established TCP connections whose local port is ``port``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                local, state, inode = fields[1], fields[3], int(fields[9])
                if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                    inodes.add(inode)
    return inodes


def sockets_of(pid: int) -> set[int]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        match = re.fullmatch(r"socket:\[(\d+)\]", target)
        if match:
            inodes.add(int(match.group(1)))
    return inodes


def instance_totals(text: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "mnist_predictions_total":
                totals["predictions"] = totals.get("predictions", 0) + sample.value
            if (
                sample.name == "mnist_http_requests_total"
                and sample.labels.get("route") == "/v1/predictions"
                and sample.labels.get("status") == "201"
            ):
                totals["created"] = totals.get("created", 0) + sample.value
    return totals


def test_connections_spread_and_metrics_cover_the_instance(
    model_root: Path, tmp_path: Path, golden: dict[int, bytes]
) -> None:
    env = api_env(model_root, sqlite_path=str(tmp_path / "var" / "p.sqlite3"))
    server = LiveServer(env, tmp_path / "log", workers=2)
    clients = []
    try:
        ready = wait_for_workers(server, 2)
        pids = [int(re.search(r"\[(\d+)\]", line).group(1)) for line in ready]  # type: ignore[union-attr]
        # 64 keep-alive connections, each opened by a request of its own.
        for _ in range(CONNECTIONS):
            client = httpx.Client(
                base_url=server.url, timeout=30, limits=httpx.Limits(max_connections=1)
            )
            clients.append(client)
            assert client.get("/healthz").status_code == 200
        open_now = established(server.port)
        held = {pid: len(sockets_of(pid) & open_now) for pid in pids}
        assert sum(held.values()) == CONNECTIONS, held
        # Spread by hash: 32 each on average; fewer than 16 on one would be 4 standard
        # deviations out. One socket shared by both workers gave 16/48 or 64/0.
        assert min(held.values()) >= 16, held

        for i in range(UPLOADS):
            client = clients[i % CONNECTIONS]
            response = client.post(
                "/v1/predictions", files={"file": ("d.png", golden[i % 10], "image/png")}
            )
            assert response.status_code == 201, response.text
        # Every scrape, whichever worker answers it, counts every upload of the instance.
        seen = []
        for client in clients[:8]:
            scrape = client.get("/metrics")
            assert scrape.status_code == 200
            seen.append(instance_totals(scrape.text))
        assert seen == [{"predictions": UPLOADS, "created": UPLOADS}] * 8
    finally:
        for client in clients:
            client.close()
        code = server.stop()
    assert code == 0, server.console[-3000:]
