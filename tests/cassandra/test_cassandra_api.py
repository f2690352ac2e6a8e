"""The API on a real Cassandra node: the same behaviour as on SQLite, and nothing acknowledged
lost when the node goes away and comes back."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.api.test_review import whole_queue
from tests.api.test_verdicts import noise_page, upload
from tests.fixtures.apps import asgi_client, running_app
from tests.fixtures.data import ROOT

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.cassandra]


def cassandra_overrides(keyspace: str) -> dict[str, object]:
    return {
        "store": "cassandra",
        "cassandra_keyspace": keyspace,
        "cassandra_consistency": "ONE",
        "cassandra_request_timeout_s": 2.0,
        "cassandra_connect_timeout_s": 1.0,
        "cassandra_reconnect_delay_ms": 500,
        "cassandra_startup_timeout_s": 10.0,
    }


async def history_ids(client: httpx.AsyncClient) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        params = {"limit": 100} | ({"cursor": cursor} if cursor else {})
        response = await client.get("/v1/predictions", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        ids += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


async def node(action: str) -> None:
    process = await asyncio.create_subprocess_exec(
        str(ROOT / "scripts" / "cassandra"),
        action,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()


class TestApiOnCassandra:
    async def test_upload_history_label_delete(
        self, model_root: Path, cassandra_keyspace: str, golden: dict[int, bytes]
    ) -> None:
        async with (
            running_app(model_root, **cassandra_overrides(cassandra_keyspace)) as app,
            asgi_client(app) as client,
        ):
            ready = (await client.get("/readyz")).json()
            assert (ready["status"], ready["store"]) == ("ready", "cassandra")
            made = []
            for digit in (2, 7, 7, 9):
                response = await client.post(
                    "/v1/predictions", files={"file": ("d.png", golden[digit])}
                )
                assert response.status_code == 201, response.text
                assert response.json()["digit"] == digit
                made.append(response.json())
            listed = await history_ids(client)
            assert listed[:4] == [p["id"] for p in reversed(made)]
            sevens = (await client.get("/v1/predictions", params={"digit": 7, "limit": 1})).json()
            assert sevens["items"][0]["id"] == made[2]["id"]
            more = (
                await client.get(f"/v1/predictions?digit=7&limit=1&cursor={sevens['next_cursor']}")
            ).json()
            assert more["items"][0]["id"] == made[1]["id"]
            target = made[0]["id"]
            labeled = await client.put(f"/v1/predictions/{target}/label", json={"label": 3})
            assert labeled.json()["label"] == 3
            only = (await client.get("/v1/predictions?labeled=true&limit=100")).json()["items"]
            assert target in {p["id"] for p in only}
            image = await client.get(f"/v1/predictions/{target}/image")
            assert image.content == golden[2]
            assert (await client.delete(f"/v1/predictions/{target}")).status_code == 204
            assert (await client.get(f"/v1/predictions/{target}")).status_code == 404
            assert target not in await history_ids(client)

    async def test_review_queue(self, model_root: Path, cassandra_keyspace: str) -> None:
        """The queue on Cassandra's own table: flagged uploads least confident first, off the
        queue once labelled."""
        async with (
            running_app(model_root, **cassandra_overrides(cassandra_keyspace)) as app,
            asgi_client(app) as client,
        ):
            made = [await upload(client, noise_page(seed)) for seed in range(5)]
            assert {m["verdict"] for m in made} == {"not_a_digit"}
            queue = await whole_queue(client)
            mine = [item["id"] for item in queue if item["id"] in {m["id"] for m in made}]
            by_confidence = sorted(made, key=lambda m: float(m["confidence"]))  # type: ignore[arg-type]
            assert mine == [m["id"] for m in by_confidence]
            first = by_confidence[0]["id"]
            labelled = await client.put(f"/v1/predictions/{first}/not-a-digit")
            assert labelled.json()["labeled_not_a_digit"] is True
            assert first not in {item["id"] for item in await whole_queue(client)}


class TestNodeOutage:
    async def test_nothing_acknowledged_is_lost_and_service_recovers(
        self, model_root: Path, cassandra_keyspace: str, golden: dict[int, bytes]
    ) -> None:
        async with (
            running_app(model_root, **cassandra_overrides(cassandra_keyspace)) as app,
            asgi_client(app) as client,
        ):
            acknowledged: list[str] = []
            refused: list[httpx.Response] = []
            stop = asyncio.Event()

            async def stream(worker: int) -> None:
                n = 0
                deadline = time.monotonic() + 240  # bounded, whatever happens
                while not stop.is_set() and time.monotonic() < deadline:
                    n += 1
                    response = await client.post(
                        "/v1/predictions", files={"file": ("d.png", golden[(worker + n) % 10])}
                    )
                    if response.status_code == 201:
                        acknowledged.append(response.json()["id"])
                    else:
                        refused.append(response)
                    await asyncio.sleep(0.05)

            workers = [asyncio.create_task(stream(w)) for w in range(3)]
            await asyncio.sleep(2)
            before_outage = len(acknowledged)
            assert before_outage > 0
            await node("stop")
            # While the node is down: uploads are refused with 503, readiness fails, liveness holds.
            await asyncio.sleep(2)
            ready = await client.get("/readyz")
            assert ready.status_code == 503, ready.text
            assert ready.json()["store_reachable"] is False
            assert (await client.get("/healthz")).status_code == 200
            refused_during = len(refused)
            assert refused_during > 0
            await node("start")
            # The service recovers by itself: no restart of the app.
            deadline = time.monotonic() + 90
            while (await client.get("/readyz")).status_code != 200:
                assert time.monotonic() < deadline, "the service did not recover"
                await asyncio.sleep(0.5)
            recovered_at = len(acknowledged)
            await asyncio.sleep(3)
            stop.set()
            await asyncio.gather(*workers)
            assert len(acknowledged) > recovered_at, "no upload succeeded after recovery"
            for response in refused:
                assert response.status_code == 503, response.text
                assert response.headers["content-type"] == "application/problem+json"
                assert response.headers["retry-after"]
                assert response.json()["type"] in (
                    "/problems/store-unavailable",
                    "/problems/inference-timeout",
                )
            stored = set(await history_ids(client))
            missing = [pid for pid in acknowledged if pid not in stored]
            assert not missing, f"{len(missing)} acknowledged uploads are not in the history"
            for pid in acknowledged[:: max(1, len(acknowledged) // 20)]:
                assert (await client.get(f"/v1/predictions/{pid}")).status_code == 200
