"""API keys over ASGI, on SQLite and on the real Cassandra node: authentication, scopes, owners
who never see each other's predictions, rate limits, the modes, and the browser hardening."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from mnist_api.kernel.settings import SettingsError, load_settings
from mnist_api.keys import KeyService, Scope
from tests.fixtures.apps import Served, asgi_client, running_app
from tests.fixtures.cassandra import cassandra_settings

pytestmark = pytest.mark.asyncio(loop_scope="session")
ALL_BUT_ADMIN = frozenset({Scope.PREDICT, Scope.READ, Scope.LABEL, Scope.DELETE})


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("cassandra", marks=pytest.mark.cassandra)]
)
def store_overrides(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, object]:
    """The settings of each store in turn (a sync fixture: it may ask for the keyspace)."""
    if request.param == "sqlite":
        return {"sqlite_path": tmp_path_factory.mktemp("auth") / "keys.sqlite3"}
    keyspace = request.getfixturevalue("cassandra_keyspace")
    settings = cassandra_settings(keyspace)
    return {
        "store": "cassandra",
        "cassandra_keyspace": keyspace,
        "cassandra_consistency": settings.cassandra_consistency,
        "cassandra_startup_timeout_s": 10.0,
    }


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def secured(model_root: Path, store_overrides: dict[str, object]) -> AsyncIterator[Served]:
    """An app that needs keys, on each store in turn; keys are looked up on every request
    (``key_cache_s=0``), so a revocation shows at once."""
    async with running_app(model_root, auth="required", key_cache_s=0.0, **store_overrides) as app:
        yield app


def keys_of(app: Served) -> KeyService:
    service: KeyService = app.state["keys"]
    return service


async def new_key(
    app: Served,
    name: str = "test",
    scopes: frozenset[Scope] = ALL_BUT_ADMIN,
    rate: float = 1000.0,
    burst: int | None = None,
) -> str:
    _, secret = await keys_of(app).create(name, scopes, rate=rate, burst=burst)
    return secret


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@asynccontextmanager
async def client_of(app: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(app) as http:
        yield http


async def upload(http: httpx.AsyncClient, secret: str, png: bytes) -> dict[str, Any]:
    response = await http.post(
        "/v1/predictions", files={"file": ("d.png", png)}, headers=bearer(secret)
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"] == f"/problems/{slug}", body
    return body


PROTECTED = [
    ("GET", "/v1/predictions"),
    ("POST", "/v1/predictions"),
    ("POST", "/v1/predictions/batch"),
    ("GET", f"/v1/predictions/{uuid.uuid1()}"),
    ("GET", f"/v1/predictions/{uuid.uuid1()}/image"),
    ("GET", f"/v1/predictions/{uuid.uuid1()}/input.png"),
    ("PUT", f"/v1/predictions/{uuid.uuid1()}/label"),
    ("DELETE", f"/v1/predictions/{uuid.uuid1()}"),
    ("GET", "/v1/keys/me"),
    ("POST", "/upload"),
]


class TestAuthentication:
    async def test_every_api_path_needs_a_key_and_nothing_else_does(self, secured: Served) -> None:
        async with client_of(secured) as http:
            for method, path in PROTECTED:
                response = await http.request(method, path)
                body = assert_problem(response, 401, "unauthorized")
                assert response.headers["www-authenticate"] == 'Bearer realm="mnist-api"'
                assert "Authorization: Bearer" in body["detail"]
            for path in (
                "/",
                "/healthz",
                "/readyz",
                "/openapi.json",
                "/docs",
                "/problems/unauthorized",
            ):
                assert (await http.get(path)).status_code == 200, path

    async def test_a_request_without_a_key_is_refused_before_its_body_is_read(
        self, secured: Served
    ) -> None:
        read = False
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            nonlocal read
            read = True
            return {"type": "http.request", "body": b"x" * 100, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/predictions",
            "raw_path": b"/v1/predictions",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"content-type", b"multipart/form-data; boundary=x")],
            "client": ("127.0.0.1", 1),
            "server": ("test", 80),
        }
        await secured(scope, receive, send)  # type: ignore[arg-type]
        assert sent[0]["status"] == 401
        assert not read

    async def test_bad_keys_are_told_apart_and_never_echoed(self, secured: Served) -> None:
        good = await new_key(secured)
        key_id = good.split("_")[1]
        wrong_secret = f"mnist_{key_id}_{'A' * 43}"
        unknown = f"mnist_{'0' * 12}_{'B' * 43}"
        cases = {
            "mnist_nonsense": "malformed",
            wrong_secret: "not valid",
            unknown: "not valid",
        }
        async with client_of(secured) as http:
            for secret, says in cases.items():
                for headers in (bearer(secret), {"X-API-Key": secret}):
                    response = await http.get("/v1/predictions", headers=headers)
                    body = assert_problem(response, 401, "unauthorized")
                    assert says in body["detail"]
                    assert secret not in response.text
                    assert 'error="invalid_token"' in response.headers["www-authenticate"]
            basic = await http.get("/v1/predictions", headers={"Authorization": "Basic eDp5"})
            assert_problem(basic, 401, "unauthorized")

    async def test_bearer_and_x_api_key_both_work(self, secured: Served) -> None:
        secret = await new_key(secured, "both")
        async with client_of(secured) as http:
            for headers in (bearer(secret), {"X-API-Key": secret}):
                response = await http.get("/v1/keys/me", headers=headers)
                assert response.status_code == 200, response.text
                me = response.json()
                assert me["name"] == "both"
                assert me["id"] == secret.split("_")[1]
                assert sorted(me["scopes"]) == ["delete", "label", "predict", "read"]
                assert secret not in response.text

    async def test_a_revoked_key_stops_working(
        self, secured: Served, golden: dict[int, bytes]
    ) -> None:
        secret = await new_key(secured, "to revoke")
        async with client_of(secured) as http:
            await upload(http, secret, golden[3])
            revoked = await keys_of(secured).revoke(secret.split("_")[1])
            assert revoked is not None
            assert revoked.revoked_at is not None
            for method, path in PROTECTED:
                response = await http.request(method, path, headers=bearer(secret))
                body = assert_problem(response, 401, "unauthorized")
                assert body["detail"] == "the API key was revoked"


class TestScopes:
    async def test_each_operation_needs_its_scope(
        self, secured: Served, golden: dict[int, bytes]
    ) -> None:
        owner = await new_key(secured, "owner")
        async with client_of(secured) as http:
            made = await upload(http, owner, golden[5])
            pid = made["id"]
            operations: dict[Scope, list[tuple[str, str, dict[str, Any]]]] = {
                Scope.PREDICT: [
                    ("POST", "/v1/predictions", {"files": {"file": ("d.png", golden[1])}}),
                    ("POST", "/upload", {"files": {"file": ("d.png", golden[1])}}),
                ],
                Scope.READ: [
                    ("GET", "/v1/predictions", {}),
                    ("GET", f"/v1/predictions/{pid}", {}),
                    ("GET", f"/v1/predictions/{pid}/image", {}),
                    ("GET", f"/v1/predictions/{pid}/input.png", {}),
                ],
                Scope.LABEL: [("PUT", f"/v1/predictions/{pid}/label", {"json": {"label": 5}})],
            }
            for scope, calls in operations.items():
                # A key of the same owner cannot exist; an admin key without the scope can.
                lacking = await new_key(secured, f"no {scope}", ALL_BUT_ADMIN - {scope})
                for method, path, kwargs in calls:
                    response = await http.request(method, path, headers=bearer(lacking), **kwargs)
                    body = assert_problem(response, 403, "forbidden")
                    assert str(scope) in body["detail"]
            no_delete = await new_key(secured, "no delete", ALL_BUT_ADMIN - {Scope.DELETE})
            response = await http.delete(f"/v1/predictions/{pid}", headers=bearer(no_delete))
            assert_problem(response, 403, "forbidden")
            assert (
                await http.get(f"/v1/predictions/{pid}", headers=bearer(owner))
            ).status_code == 200

    async def test_admin_sees_every_owner_and_filters_by_owner(
        self, secured: Served, golden: dict[int, bytes]
    ) -> None:
        alice, bob = await new_key(secured, "alice"), await new_key(secured, "bob")
        admin = await new_key(secured, "admin", frozenset({Scope.ADMIN}))
        async with client_of(secured) as http:
            a = await upload(http, alice, golden[1])
            b = await upload(http, bob, golden[2])
            seen = await http.get("/v1/predictions", params={"limit": 100}, headers=bearer(admin))
            ids = [item["id"] for item in seen.json()["items"]]
            assert ids.index(b["id"]) < ids.index(a["id"])
            only_alice = await http.get(
                "/v1/predictions", params={"owner": a["owner"], "limit": 100}, headers=bearer(admin)
            )
            assert {item["owner"] for item in only_alice.json()["items"]} == {a["owner"]}
            assert a["id"] in [item["id"] for item in only_alice.json()["items"]]
            for path in (f"/v1/predictions/{b['id']}", f"/v1/predictions/{b['id']}/image"):
                assert (await http.get(path, headers=bearer(admin))).status_code == 200
            relabel = await http.put(
                f"/v1/predictions/{b['id']}/label", json={"label": 4}, headers=bearer(admin)
            )
            assert relabel.json()["label"] == 4
            # A key that is not admin may not ask for another owner's history.
            response = await http.get(
                "/v1/predictions", params={"owner": a["owner"]}, headers=bearer(bob)
            )
            assert_problem(response, 403, "forbidden")
            own = await http.get(
                "/v1/predictions", params={"owner": b["owner"]}, headers=bearer(bob)
            )
            assert [item["id"] for item in own.json()["items"]] == [b["id"]]


class TestOwnership:
    async def test_another_owners_prediction_is_answered_as_if_it_did_not_exist(
        self, secured: Served, golden: dict[int, bytes]
    ) -> None:
        alice, bob = await new_key(secured, "alice"), await new_key(secured, "bob")
        async with client_of(secured) as http:
            mine = await upload(http, alice, golden[7])
            assert mine["owner"] == alice.split("_")[1]
            unknown = str(uuid.uuid1())
            for template in (
                "GET /v1/predictions/{}",
                "GET /v1/predictions/{}/image",
                "GET /v1/predictions/{}/input.png",
                "PUT /v1/predictions/{}/label",
                "DELETE /v1/predictions/{}",
            ):
                method, path = template.split()
                kwargs: dict[str, Any] = {"json": {"label": 1}} if method == "PUT" else {}
                # One request id for both, so that the bodies may be compared byte for byte.
                headers = bearer(bob) | {"X-Request-ID": "probe"}
                theirs = await http.request(
                    method, path.format(mine["id"]), headers=headers, **kwargs
                )
                missing = await http.request(
                    method, path.format(unknown), headers=headers, **kwargs
                )
                assert_problem(theirs, 404, "prediction-not-found")
                assert theirs.text.replace(mine["id"], unknown) == missing.text
            history = await http.get("/v1/predictions", params={"limit": 100}, headers=bearer(bob))
            assert mine["id"] not in [item["id"] for item in history.json()["items"]]
            # Nothing bob tried changed alice's prediction.
            again = await http.get(f"/v1/predictions/{mine['id']}", headers=bearer(alice))
            assert again.json() == mine
            listed = await http.get("/v1/predictions", headers=bearer(alice))
            assert [item["id"] for item in listed.json()["items"]] == [mine["id"]]

    async def test_a_batch_belongs_to_its_key(
        self, secured: Served, golden: dict[int, bytes]
    ) -> None:
        carol = await new_key(secured, "carol")
        async with client_of(secured) as http:
            files = [("files", (f"{d}.png", golden[d])) for d in (0, 6)]
            response = await http.post("/v1/predictions/batch", files=files, headers=bearer(carol))
            assert response.status_code == 200, response.text
            owners = {item["prediction"]["owner"] for item in response.json()["items"]}
            assert owners == {carol.split("_")[1]}


class TestRateLimits:
    async def test_429_with_retry_after_and_recovery(self, secured: Served) -> None:
        secret = await new_key(secured, "slow", rate=2.0, burst=3)
        async with client_of(secured) as http:
            remaining = []
            for _ in range(3):
                response = await http.get("/v1/keys/me", headers=bearer(secret))
                assert response.status_code == 200
                assert response.headers["ratelimit-limit"] == "3"
                remaining.append(int(response.headers["ratelimit-remaining"]))
            assert remaining == [2, 1, 0]
            refused = await http.get("/v1/predictions", headers=bearer(secret))
            body = assert_problem(refused, 429, "rate-limited")
            assert "2 requests a second" in body["detail"]
            assert refused.headers["retry-after"] == "1"
            assert refused.headers["ratelimit-remaining"] == "0"
            assert int(refused.headers["ratelimit-reset"]) >= 1
            await asyncio.sleep(1.1)
            assert (await http.get("/v1/keys/me", headers=bearer(secret))).status_code == 200

    async def test_a_batch_costs_one_request_per_file_and_stores_nothing_when_refused(
        self, secured: Served, golden: dict[int, bytes]
    ) -> None:
        secret = await new_key(secured, "batcher", rate=0.1, burst=5)
        async with client_of(secured) as http:
            two = [("files", (f"{d}.png", golden[d])) for d in (1, 2)]
            response = await http.post("/v1/predictions/batch", files=two, headers=bearer(secret))
            assert response.status_code == 200, response.text
            assert response.headers["ratelimit-remaining"] == "3"
            four = [("files", (f"{d}.png", golden[d])) for d in (3, 4, 5, 6)]
            response = await http.post("/v1/predictions/batch", files=four, headers=bearer(secret))
            assert_problem(response, 429, "rate-limited")
            # Refused whole: none of the four was stored, and the tokens are still there.
            listed = await http.get("/v1/predictions", headers=bearer(secret))
            assert listed.status_code == 200
            assert len(listed.json()["items"]) == 2
            assert listed.headers["ratelimit-remaining"] == "1"

    async def test_one_of_several_instances_enforces_its_share(
        self, model_root: Path, tmp_path: Path
    ) -> None:
        """With MNIST_API_INSTANCES=2, this instance allows half the key's rate and burst."""
        async with running_app(
            model_root, auth="required", instances=2, sqlite_path=tmp_path / "k.sqlite3"
        ) as app:
            secret = await new_key(app, "shared", rate=4.0, burst=6)
            async with client_of(app) as http:
                allowed = 0
                while (await http.get("/v1/keys/me", headers=bearer(secret))).status_code == 200:
                    allowed += 1
                    assert allowed <= 6
                refused = await http.get("/v1/keys/me", headers=bearer(secret))
        assert allowed == 3
        body = assert_problem(refused, 429, "rate-limited")
        assert "4 requests a second (bursts of 6), each of the 2 instances" in body["detail"]
        assert refused.headers["ratelimit-limit"] == "3"


class TestModes:
    async def test_legacy_upload_works_with_a_key(
        self, secured: Served, golden: dict[int, bytes]
    ) -> None:
        secret = await new_key(secured, "legacy client")
        async with client_of(secured) as http:
            response = await http.post(
                "/upload", files={"file": ("d.png", golden[8])}, headers=bearer(secret)
            )
            assert response.status_code == 200, response.text
            assert response.json()["digit"] == 8
            assert response.json()["owner"] == secret.split("_")[1]

    async def test_with_authentication_off_no_key_is_needed(
        self, client: httpx.AsyncClient, golden: dict[int, bytes]
    ) -> None:
        legacy = await client.post("/upload", files={"file": ("d.png", golden[4])})
        assert legacy.status_code == 200, legacy.text
        assert legacy.json()["owner"] == "anonymous"
        me = (await client.get("/v1/keys/me")).json()
        assert me["id"] == "anonymous"
        assert set(me["scopes"]) == {"predict", "read", "label", "delete", "admin"}
        assert "ratelimit-limit" not in legacy.headers
        bad = await client.get("/v1/predictions", headers=bearer("mnist_nonsense"))
        assert_problem(bad, 401, "unauthorized")

    async def test_anonymous_access_is_only_served_on_loopback(self) -> None:
        for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
            assert load_settings(auth="off", host=host).host == host
        for host in ("0.0.0.0", "192.0.2.7", "::", "digits.example.org"):
            with pytest.raises(SettingsError, match="MNIST_API_ALLOW_ANONYMOUS"):
                load_settings(auth="off", host=host)
            assert load_settings(auth="off", host=host, allow_anonymous=True).host == host
            assert load_settings(auth="required", host=host).host == host


class TestBrowserHardening:
    async def test_security_headers_everywhere(self, secured: Served) -> None:
        secret = await new_key(secured)
        async with client_of(secured) as http:
            for path, headers in (
                ("/", {}),
                ("/static/js/main.js", {}),
                ("/v1/predictions", bearer(secret)),
                ("/v1/predictions", {}),  # a refusal too
                ("/docs", {}),
                ("/openapi.json", {}),
            ):
                response = await http.get(path, headers=headers)
                assert response.headers["x-content-type-options"] == "nosniff", path
                assert response.headers["referrer-policy"] == "no-referrer", path
                policy = response.headers["content-security-policy"]
                assert "script-src 'self';" in policy, path
                assert "unsafe-inline' " not in policy.split("script-src")[1].split(";")[0]
                assert "frame-ancestors 'none'" in policy, path

    async def test_uploaded_images_are_downloads_in_a_sandbox(
        self, secured: Served, golden: dict[int, bytes]
    ) -> None:
        secret = await new_key(secured)
        async with client_of(secured) as http:
            made = await upload(http, secret, golden[0])
            image = await http.get(f"/v1/predictions/{made['id']}/image", headers=bearer(secret))
            assert image.status_code == 200
            assert image.headers["content-disposition"] == (
                f'attachment; filename="{made["id"]}.png"'
            )
            assert "sandbox" in image.headers["content-security-policy"]

    @pytest.mark.parametrize("origins", [["https://digits.example.org"], ["*"]])
    async def test_cors_never_allows_credentials(
        self, model_root: Path, tmp_path: Path, origins: list[str]
    ) -> None:
        async with (
            running_app(
                model_root,
                auth="required",
                cors_origins=",".join(origins),
                sqlite_path=tmp_path / "cors.sqlite3",
            ) as app,
            client_of(app) as http,
        ):
            preflight = await http.options(
                "/v1/predictions",
                headers={
                    "Origin": "https://digits.example.org",
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization",
                },
            )
            assert preflight.status_code == 200, preflight.text
            assert "access-control-allow-credentials" not in preflight.headers
            assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
            refused = await http.get(
                "/v1/predictions", headers={"Origin": "https://digits.example.org"}
            )
            assert refused.status_code == 401
            assert "access-control-allow-credentials" not in refused.headers
            exposed = refused.headers["access-control-expose-headers"]
            assert re.search(r"(?i)www-authenticate", exposed)
