"""A real uvicorn process on 127.0.0.1, called the way the original clients called it."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer


class TestRealServer:
    def test_original_curl_command(
        self, live_server: LiveServer, golden: dict[int, bytes], tmp_path: Path
    ) -> None:
        curl = shutil.which("curl")
        assert curl, "curl is needed to run the original client's command"
        digit = tmp_path / "digit.png"
        digit.write_bytes(golden[7])
        result = subprocess.run(
            [curl, "-sS", "-XPOST", f"{live_server.url}/upload", "-F", f"file=@{digit}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        body = json.loads(result.stdout)
        assert body["digit"] == 7
        stored = httpx.get(f"{live_server.url}/v1/predictions/{body['id']}", timeout=10)
        assert stored.status_code == 200

    def test_v1_upload_and_history_over_http(
        self, live_server: LiveServer, golden: dict[int, bytes]
    ) -> None:
        with httpx.Client(base_url=live_server.url, timeout=30) as http:
            created = http.post("/v1/predictions", files={"file": ("five.png", golden[5])})
            assert created.status_code == 201
            assert created.headers["location"] == f"/v1/predictions/{created.json()['id']}"
            newest = http.get("/v1/predictions", params={"limit": 1}).json()["items"][0]
            assert newest["id"] == created.json()["id"]
            assert http.get("/docs").status_code == 200
            assert http.get("/redoc").status_code == 200
            assert http.get("/readyz").json()["status"] == "ready"


def test_serve_without_a_model_fails_with_one_line(tmp_path: Path) -> None:
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("MNIST_API_")}
    env["MNIST_API_MODEL_PATH"] = str(tmp_path / "none")
    result = subprocess.run(
        [sys.executable, "-m", "mnist_api", "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"mnist-api: error: model: no model artifact at {tmp_path / 'none'}: "
        "train one with `mnist-train train`"
    ]


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "MNIST_API_MAX_BATCH",
            "0",
            "MNIST_API_MAX_BATCH: Input should be greater than or equal to 1",
        ),
        (
            "MNIST_API_STORE",
            "mongo",
            "MNIST_API_STORE: Input should be 'sqlite', 'cassandra' or 'none'",
        ),
        ("MNIST_API_CASSANDRA_REPLICATION", "Simple", "MNIST_API_CASSANDRA_REPLICATION"),
    ],
)
def test_invalid_settings_fail_fast(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    from mnist_api.settings import SettingsError, load_settings

    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match="invalid configuration") as caught:
        load_settings()
    assert message in str(caught.value)
