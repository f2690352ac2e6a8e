"""The service on a real 3-node cluster (three replicas, LOCAL_QUORUM) while nodes fail, under a
stream of uploads and history reads through HTTP:

- one node killed: no request fails, nothing acknowledged is lost; restarted, it catches up;
- one node frozen (connections hang instead of closing): requests keep succeeding, and the p99
  during the freeze is reported;
- two nodes down: uploads answer 503 with Retry-After, nothing acknowledged is lost, and the
  service recovers by itself when a node comes back. While only the node killed in the first
  test is up, it alone holds every prediction acknowledged before: once the hints the other
  nodes kept for it are delivered (waited for, and timed), it has caught up;
- a node restarted while the seed is slow to answer still joins.

The tests run in this order on one cluster; ``scripts/test`` starts it after the other tests
(``-m cluster``). Figures go to ``test-artifacts/cluster/``.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import acsylla
import httpx
import pytest

from mnist_api.kernel.cassandra import quiet_driver_logs
from tests.fixtures.cluster import HOSTS, cluster, heal
from tests.fixtures.servers import LiveServer

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.cluster]
CLIENTS = 8
REQUESTS_PER_S = 40  # the stream: about 30 uploads and 10 history reads a second
HISTORY_EVERY = 4  # one history read per this many requests of a client


@dataclass
class Outcome:
    at: float  # seconds since the stream started
    kind: str  # upload or history
    status: int
    latency: float
    prediction_id: str | None = None
    digit: int | None = None
    retry_after: str | None = None


class Stream:
    """Clients uploading golden digits and reading the history's first page, until stopped: a
    steady stream (``REQUESTS_PER_S``), which a node's failure must not interrupt; how much the
    service takes at most is the benchmark's business (``bench/history.py``)."""

    def __init__(
        self, url: str, golden: dict[int, bytes], headers: dict[str, str] | None = None
    ) -> None:
        self.url = url
        self.golden = golden
        self.headers = headers or {}
        self.outcomes: list[Outcome] = []
        self.started = time.monotonic()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def now(self) -> float:
        return time.monotonic() - self.started

    async def __aenter__(self) -> Stream:
        self.started = time.monotonic()
        self._tasks = [asyncio.create_task(self._client(n)) for n in range(CLIENTS)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        global LAST_WRITE_AT
        LAST_WRITE_AT = time.monotonic()

    async def _client(self, seed: int) -> None:
        rng = random.Random(seed)
        interval = CLIENTS / REQUESTS_PER_S
        async with httpx.AsyncClient(base_url=self.url, timeout=60, headers=self.headers) as http:
            n = 0
            await asyncio.sleep(rng.random() * interval)
            while not self._stop.is_set():
                n += 1
                began = self.now()
                wait = began + interval
                if n % HISTORY_EVERY == 0:
                    response = await http.get("/v1/predictions", params={"limit": 20})
                    self.outcomes.append(
                        Outcome(
                            began,
                            "history",
                            response.status_code,
                            self.now() - began,
                            retry_after=response.headers.get("retry-after"),
                        )
                    )
                    await asyncio.sleep(max(0.0, wait - self.now()))
                    continue
                digit = rng.randrange(10)
                response = await http.post(
                    "/v1/predictions", files={"file": ("d.png", self.golden[digit])}
                )
                created = response.json() if response.status_code == 201 else {}
                self.outcomes.append(
                    Outcome(
                        began,
                        "upload",
                        response.status_code,
                        self.now() - began,
                        created.get("id"),
                        created.get("digit"),
                        response.headers.get("retry-after"),
                    )
                )
                await asyncio.sleep(max(0.0, wait - self.now()))

    def acknowledged(self) -> dict[str, int]:
        return {
            o.prediction_id: o.digit or 0
            for o in self.outcomes
            if o.status == 201 and o.prediction_id is not None
        }

    def between(self, start: float, end: float) -> list[Outcome]:
        return [o for o in self.outcomes if start <= o.at < end]

    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status not in (200, 201)]


def percentiles(outcomes: list[Outcome]) -> dict[str, float]:
    latencies = sorted(o.latency for o in outcomes)
    if not latencies:
        return {"count": 0}
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return {
        "count": len(latencies),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(p99 * 1000, 1),
        "max_ms": round(latencies[-1] * 1000, 1),
    }


def report(artifacts_dir: Path, name: str, figures: dict[str, Any]) -> None:
    folder = artifacts_dir / "cluster"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(figures, indent=2), encoding="utf-8")
    print(f"\n{name}: {json.dumps(figures)}")


async def node(action: str, number: int) -> None:
    await asyncio.to_thread(cluster, action, str(number))


async def assert_all_readable(
    url: str, acknowledged: dict[str, int], headers: dict[str, str] | None = None
) -> None:
    """Every acknowledged prediction is there (by id, at the service's LOCAL_QUORUM), with its
    digit, and in the history."""
    limit = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=headers) as http:

        async def check(prediction_id: str, digit: int) -> None:
            async with limit:
                response = await http.get(f"/v1/predictions/{prediction_id}")
            assert response.status_code == 200, (prediction_id, response.text)
            assert response.json()["digit"] == digit

        await asyncio.gather(*(check(pid, digit) for pid, digit in acknowledged.items()))
        listed: set[str] = set()
        cursor = None
        while True:
            params = {"limit": 100} | ({"cursor": cursor} if cursor else {})
            page = (await http.get("/v1/predictions", params=params)).json()
            listed |= {item["id"] for item in page["items"]}
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert set(acknowledged) <= listed


async def wait_until(check: Any, limit_s: float, what: str) -> float:
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < limit_s, f"{what} not within {limit_s} s"
        await asyncio.sleep(0.5)
    return time.monotonic() - started


ACKNOWLEDGED: dict[str, int] = {}  # every prediction acknowledged so far, across the tests
LAST_WRITE_AT = 0.0  # when the last stream ended (time.monotonic())
# A write a replica missed becomes a hint on its coordinator at once (replica down) or when it
# times out (write_request_timeout, 2 s); hints wait in memory up to hints_flush_period (10 s),
# then in a file on disk until every hint in it is delivered.
HINTS_ON_DISK_AFTER_S = 2 + 10 + 1


async def assert_kept(url: str, stream: Stream) -> None:
    """Every upload the stream saw acknowledged reads back; the later tests check them too."""
    ACKNOWLEDGED.update(stream.acknowledged())
    await assert_all_readable(url, stream.acknowledged())


class TestNodeFailures:
    async def test_one_node_killed_and_restarted(
        self, cluster_server: LiveServer, golden: dict[int, bytes], artifacts_dir: Path
    ) -> None:
        async with Stream(cluster_server.url, golden) as stream:
            await asyncio.sleep(3)
            killed_at = stream.now()
            await node("kill", 2)
            await asyncio.sleep(25)  # past the failure detector (about 19 s)
            restart_at = stream.now()
            await node("restart", 2)
            back_at = stream.now()
            await asyncio.sleep(5)
        failed = stream.failed()
        assert failed == [], failed[:5]
        await assert_kept(cluster_server.url, stream)
        report(
            artifacts_dir,
            "one-node-killed",
            {
                "requests": len(stream.outcomes),
                "failed": len(failed),
                "acknowledged_uploads": len(stream.acknowledged()),
                "before": percentiles(stream.between(0, killed_at)),
                "node_down": percentiles(stream.between(killed_at, restart_at)),
                "restarting": percentiles(stream.between(restart_at, back_at)),
                "after": percentiles(stream.between(back_at, stream.now())),
            },
        )

    async def test_one_node_frozen(
        self, cluster_server: LiveServer, golden: dict[int, bytes], artifacts_dir: Path
    ) -> None:
        async with Stream(cluster_server.url, golden) as stream:
            await asyncio.sleep(3)
            frozen_at = stream.now()
            await node("freeze", 3)
            await asyncio.sleep(20)
            thawed_at = stream.now()
            await node("thaw", 3)
            await asyncio.sleep(5)
        failed = stream.failed()
        assert failed == [], failed[:5]
        during = percentiles(stream.between(frozen_at, thawed_at))
        assert during["p99_ms"] < 5000, during  # within the driver's request timeout
        await assert_kept(cluster_server.url, stream)
        report(
            artifacts_dir,
            "one-node-frozen",
            {
                "requests": len(stream.outcomes),
                "failed": len(failed),
                "before": percentiles(stream.between(0, frozen_at)),
                "frozen": during,
                "first_5_s_frozen": percentiles(stream.between(frozen_at, frozen_at + 5)),
                "after": percentiles(stream.between(thawed_at, stream.now())),
            },
        )

    async def test_two_nodes_down(
        self,
        cluster_server: LiveServer,
        cluster_keyspace: str,
        golden: dict[int, bytes],
        artifacts_dir: Path,
    ) -> None:
        # Writes node 2 missed (while down in the first test, or timed out on it) wait as hints
        # on nodes 1 and 3; killed, they would take undelivered ones along. Node 2 alone holds
        # everything once the hint files for it are gone.
        await asyncio.sleep(max(0.0, LAST_WRITE_AT + HINTS_ON_DISK_AFTER_S - time.monotonic()))
        hints_for_node_2 = await hint_file_counter(2)
        hint_files = hints_for_node_2()

        async def hints_delivered() -> bool:
            return hints_for_node_2() == 0

        hints_wait_s = await wait_until(hints_delivered, 120, "hints for node 2 delivered")
        try:
            async with Stream(cluster_server.url, golden) as stream:
                await asyncio.sleep(3)
                down_at = stream.now()
                await asyncio.gather(node("kill", 1), node("kill", 3))
                await asyncio.sleep(25)
                # Only node 2 is up, the one killed in the first test: it alone must hold every
                # prediction acknowledged before the stream.
                await assert_held_by_node_2(cluster_keyspace, ACKNOWLEDGED)
                back_at = stream.now()
                await node("restart", 1)

                async def uploads_work() -> bool:
                    recent = [
                        o for o in stream.outcomes if o.kind == "upload" and o.at > stream.now() - 2
                    ]
                    return any(o.status == 201 for o in recent)

                await wait_until(uploads_work, 60, "uploads after a node came back")
                recovered_in = (
                    min(o.at for o in stream.outcomes if o.status == 201 and o.at > back_at)
                    - back_at
                )
                await asyncio.sleep(3)
        finally:
            await asyncio.to_thread(heal)  # node 3 too, and node 1 if the test failed early
        down = stream.between(down_at + 1, back_at)
        refused = [o for o in down if o.kind == "upload" and o.status != 201]
        assert refused, "uploads kept succeeding with two of three replicas down"
        assert {o.status for o in stream.outcomes} <= {200, 201, 503}
        assert all(o.retry_after for o in stream.outcomes if o.status == 503)
        ACKNOWLEDGED.update(stream.acknowledged())
        await assert_all_readable(cluster_server.url, ACKNOWLEDGED)
        report(
            artifacts_dir,
            "two-nodes-down",
            {
                "requests": len(stream.outcomes),
                "refused_503": sum(o.status == 503 for o in stream.outcomes),
                "acknowledged_while_down": sum(o.status == 201 for o in down),
                # From the moment node 1 was started again to the first upload stored.
                "recovered_in_s": round(recovered_in, 1),
                "refusals": percentiles([o for o in stream.outcomes if o.status == 503]),
                "acknowledged_in_all_tests": len(ACKNOWLEDGED),
                "hint_files_for_node_2_at_start": hint_files,
                "hints_delivered_in_s": round(hints_wait_s, 1),
            },
        )


@asynccontextmanager
async def node_session(host: str) -> AsyncIterator[Any]:
    """A session that talks to HOST alone, at consistency ONE."""
    quiet_driver_logs()
    session_cluster = acsylla.create_cluster(
        [host],
        whitelist_hosts=host,
        consistency=acsylla.Consistency.ONE,
        request_timeout=10,
        log_level="disabled",
    )
    session = await session_cluster.create_session()
    try:
        yield session
    finally:
        await session.close()
        session_cluster.destroy()


async def assert_held_by_node_2(keyspace: str, acknowledged: dict[str, int]) -> None:
    """Read every id from node 2 alone."""
    async with node_session(HOSTS[1]) as session:
        prepared = await session.create_prepared(
            f"SELECT id, digit FROM {keyspace}.predictions WHERE id = ?"
        )
        missing = []
        for prediction_id, digit in acknowledged.items():
            row = (await session.execute(prepared.bind([prediction_id]))).first()
            if row is None or row.as_dict()["digit"] != digit:
                missing.append(prediction_id)
        assert missing == [], (
            f"{len(missing)} of {len(acknowledged)} missing on node 2 (first {missing[0]}); "
            "its log's errors and dropped messages:\n" + "\n".join(log_troubles(2))
        )


def log_troubles(number: int, lines: int = 30) -> list[str]:
    """The last errors, warnings and dropped-message reports in node NUMBER's log."""
    marks = ("ERROR", "WARN", "dropped", "Unknown CF")
    text = node_log(number).read_text(encoding="utf-8", errors="replace")
    return [line[:400] for line in text.splitlines() if any(m in line for m in marks)][-lines:]


async def hint_file_counter(number: int) -> Callable[[], int]:
    """A count of the hint files the other nodes keep for node NUMBER. A file stays on disk until
    every hint in it is delivered (``system_views.pending_hints`` leaves out the file being
    delivered)."""
    async with node_session(HOSTS[number - 1]) as session:
        local = await session.execute(acsylla.create_statement("SELECT host_id FROM system.local"))
        host_id = str(local.first().as_dict()["host_id"])
    files = cluster_files()
    folders = [files / f"node{other}/data/hints" for other in (1, 2, 3) if other != number]
    return lambda: sum(len(list(folder.glob(f"{host_id}-*.hints"))) for folder in folders)


class TestNodeRestarts:
    async def test_a_node_restarts_while_the_seed_is_slow_to_answer(
        self, cassandra_cluster: None
    ) -> None:
        """A restarting node's first gossip (Cassandra's shadow round) waits for the seed's
        answer. Node 2 restarted while the seed is frozen for 3 s, from the moment node 2 starts
        listening, must still start: with a ring delay of 0 it gave up after one second ("Unable
        to gossip with any peers"), as it once did with the seed busy under a stream of uploads."""
        log = node_log(2)
        written_before = log.stat().st_size
        await node("kill", 2)
        restart = asyncio.create_task(node("restart", 2))
        try:
            deadline = time.monotonic() + 120
            while not listening_since(log, written_before):
                assert not restart.done(), "node 2 ended its start before listening"
                assert time.monotonic() < deadline, "node 2 did not start listening in 120 s"
                await asyncio.sleep(0.05)
            await node("freeze", 1)
            await asyncio.sleep(3)
        finally:
            await node("thaw", 1)
        await restart  # the command fails (with node 2's log) when the node does not start
        node_2 = cluster("status").splitlines()[1]
        assert node_2.startswith("node2"), node_2
        assert "CQL answering" in node_2, node_2


LISTENING = "InboundConnectionInitiator - Listening on address"


def listening_since(log: Path, offset: int) -> bool:
    """Whether the node logged that it listens after OFFSET (the whole file if it rolled over)."""
    with log.open("rb") as file:
        file.seek(offset if file.seek(0, 2) >= offset else 0)
        return LISTENING.encode() in file.read()


def cluster_files() -> Path:
    """Where ``scripts/cassandra cluster status`` says the nodes' files are."""
    status = cluster("status")
    files = next(line for line in status.splitlines() if line.startswith("files: "))
    return Path(files.removeprefix("files: ").split(" (")[0])


def node_log(number: int) -> Path:
    """Node NUMBER's system.log."""
    return cluster_files() / f"node{number}/logs/system.log"
