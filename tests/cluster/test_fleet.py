"""Two instances behind HAProxy (``scripts/fleet``) on the 3-node cluster, with API keys
required: a rolling restart of both under a stream of uploads and history reads fails no request
and loses nothing acknowledged; a key works on every instance and its revocation reaches them
all; a key's rate holds across instances (each enforces half). Figures go to
``test-artifacts/cluster/rolling-restart.json``.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.cluster.test_node_failures import Stream, assert_all_readable, percentiles, report
from tests.fixtures.cluster import HOSTS
from tests.fixtures.data import ROOT
from tests.fixtures.servers import api_env, create_key, mnist_api

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.cluster]
INSTANCES = 2
KEY_CACHE_S = 1.0


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive free ports on 127.0.0.1."""
    for first in range(20000, 60000, 97):
        try:
            held = []
            for port in range(first, first + count):
                sock = socket.socket()
                held.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
        return first
    raise RuntimeError("no free ports")


@dataclass
class FleetProcess:
    process: subprocess.Popen[bytes]
    url: str
    instance_urls: list[str]
    env: dict[str, str]
    log_path: Path

    @property
    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, line: str, count: int = 1, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while self.output.count(line) < count:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {line!r} (x{count}) from the fleet:\n{self.output}")
            time.sleep(0.2)


@pytest.fixture(scope="module")
def fleet(
    cluster_keyspace: str, model_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FleetProcess]:
    folder = tmp_path_factory.mktemp("fleet")
    env = api_env(
        model_root,
        auth="required",
        key_cache_s=str(KEY_CACHE_S),
        store="cassandra",
        cassandra_keyspace=cluster_keyspace,
        cassandra_contact_points=",".join(HOSTS),
        cassandra_consistency="LOCAL_QUORUM",
    )
    del env["MNIST_API_DRAIN_DELAY_S"]  # the fleet's own (2 s, longer than HAProxy's checks)
    port = free_ports(INSTANCES + 1)  # the balancer's, then the instances'
    first = port + 1
    log_path = folder / "fleet.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(ROOT / "scripts" / "fleet"),
                *("--instances", str(INSTANCES), "--port", str(port)),
                *("--first-port", str(first), "--dir", str(folder)),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    running = FleetProcess(
        process,
        f"http://127.0.0.1:{port}",
        [f"http://127.0.0.1:{first + n}" for n in range(INSTANCES)],
        env,
        log_path,
    )
    try:
        running.wait_for("fleet ready")
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(90)
            except subprocess.TimeoutExpired:
                process.kill()


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


class TestFleet:
    async def test_rolling_restart_fails_nothing(
        self, fleet: FleetProcess, golden: dict[int, bytes], artifacts_dir: Path
    ) -> None:
        secret = await asyncio.to_thread(create_key, fleet.env, "stream", "--rate", "500/s")
        headers = bearer(secret)
        async with Stream(fleet.url, golden, headers) as stream:
            await asyncio.sleep(3)
            restart_at = stream.now()
            fleet.process.send_signal(signal.SIGHUP)
            await asyncio.to_thread(fleet.wait_for, "rolling restart done")
            done_at = stream.now()
            await asyncio.sleep(3)
        failed = stream.failed()
        assert failed == [], failed[:5]
        for n in range(1, INSTANCES + 1):
            assert f"instance-{n} restarted (exit status 0)" in fleet.output, fleet.output
        during = stream.between(restart_at, done_at)
        assert sum(o.kind == "upload" for o in during) > 50
        await assert_all_readable(fleet.url, stream.acknowledged(), headers)
        report(
            artifacts_dir,
            "rolling-restart",
            {
                "instances": INSTANCES,
                "requests": len(stream.outcomes),
                "failed": len(failed),
                "acknowledged_uploads": len(stream.acknowledged()),
                "restart_s": round(done_at - restart_at, 1),
                "before": percentiles(stream.between(0, restart_at)),
                "restarting": percentiles(during),
                "after": percentiles(stream.between(done_at, stream.now())),
            },
        )

    async def test_a_key_works_everywhere_and_its_revocation_reaches_every_instance(
        self, fleet: FleetProcess
    ) -> None:
        secret = await asyncio.to_thread(create_key, fleet.env, "revoked soon")
        key_id = secret.split("_")[1]
        async with httpx.AsyncClient(timeout=30, headers=bearer(secret)) as http:
            for url in fleet.instance_urls:
                assert (await http.get(f"{url}/v1/keys/me")).status_code == 200
            revoked = await asyncio.to_thread(mnist_api, fleet.env, "keys", "revoke", key_id)
            assert revoked.returncode == 0, revoked.stderr
            revoked_at = time.monotonic()
            waiting = set(fleet.instance_urls)
            while waiting:
                assert time.monotonic() - revoked_at < KEY_CACHE_S + 3, waiting
                for url in sorted(waiting):
                    if (await http.get(f"{url}/v1/keys/me")).status_code == 401:
                        waiting.discard(url)
                await asyncio.sleep(0.1)
            assert (await http.get(f"{fleet.url}/v1/keys/me")).status_code == 401

    async def test_a_keys_rate_holds_across_instances(self, fleet: FleetProcess) -> None:
        """A key allowed bursts of 10: through the balancer, about 10 requests pass at once,
        not 10 per instance (each instance holds a bucket of 5 refilled at 0.5 a second)."""
        secret = await asyncio.to_thread(
            create_key, fleet.env, "limited", "--rate", "1/s", "--burst", "10"
        )
        statuses = []
        limits = set()
        async with httpx.AsyncClient(base_url=fleet.url, timeout=30) as http:
            began = time.monotonic()
            for _ in range(30):
                answer = await http.get("/v1/keys/me", headers=bearer(secret))
                statuses.append(answer.status_code)
                limits.add(answer.headers.get("ratelimit-limit"))
            took = time.monotonic() - began
        assert set(statuses) == {200, 429}
        refill = INSTANCES * 0.5 * took  # what the buckets gained while the requests ran
        assert 10 <= statuses.count(200) <= 10 + refill + 1, (statuses, took)
        assert limits == {"5"}

    async def test_the_fleet_stops_cleanly(self, fleet: FleetProcess) -> None:
        fleet.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(fleet.process.wait, 60)
        assert code == 0, fleet.output
        assert "fleet stopped" in fleet.output
