"""A real uvicorn process on 127.0.0.1, called the way the original clients called it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.fixtures.servers import LiveServer, api_env

STARTS = 10  # fresh starts of a multi-worker server on an empty SQLite path
STARTS_WORKERS = 4


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
        (
            "MNIST_API_INFERENCE_MODE",
            "predict",
            "MNIST_API_INFERENCE_MODE=predict is the original system's way, one Keras "
            "model.predict per request: set MNIST_API_RUNTIME=tensorflow with it",
        ),
        (
            "MNIST_API_DRAIN_DELAY_S",
            "30",
            "MNIST_API_DRAIN_DELAY_S (30) must be shorter than MNIST_API_GRACE_PERIOD_S (30)",
        ),
        (
            "MNIST_API_RUNTIME",
            "onnx",
            "MNIST_API_RUNTIME: Input should be 'litert' or 'tensorflow'",
        ),
    ],
)
def test_invalid_settings_fail_fast(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    from mnist_api.kernel.settings import SettingsError, load_settings

    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match="invalid configuration") as caught:
        load_settings()
    assert message in str(caught.value)


# The console a person sees, and starts that must never fail.

# TensorFlow's C++ logging (absl): "I0000 00:00:... port.cc:153] ...", and its start-up lines;
# LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
TENSORFLOW_LINE = re.compile(
    r"absl::|oneDNN|^[IWEF]\d{4} [\d:.]+ +\d+ \S+\.cc:\d+\]|TF_CPP|tensorflow/"
    r"|XNNPACK|TensorFlow Lite"
)
READY = re.compile(
    r"^\S+ \S+ INFO +\[(\d+)\] mnist_api: ready on (http://\S+): model (\S+) "
    r"\(test accuracy (\d+\.\d\d)%\), store sqlite \((\S+)\), "
    r"(API keys required|authentication off)$",
    re.M,
)


def wait_for_workers(server: LiveServer, workers: int, timeout: float = 120.0) -> list[str]:
    """The ready lines of all ``workers`` (each says so once it has its model and store)."""
    server.wait_ready(timeout)
    deadline = time.monotonic() + timeout
    while len(READY.findall(server.console)) < workers:
        if server.process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{workers} workers never all ready:\n{server.console[-3000:]}")
        time.sleep(0.2)
    return [m.group(0) for m in READY.finditer(server.console)]


class TestConsole:
    def test_two_workers_say_once_each_that_they_are_ready_and_nothing_else(
        self, model_root: Path, tmp_path: Path
    ) -> None:
        db = tmp_path / "var" / "predictions.sqlite3"
        server = LiveServer(api_env(model_root, sqlite_path=str(db)), tmp_path / "log", workers=2)
        try:
            ready = wait_for_workers(server, 2)
        finally:
            code = server.stop()
        console = server.console
        assert code == 0, console
        version = (model_root / "LATEST").read_text().strip()
        accuracy = json.loads((model_root / version / "metadata.json").read_text())
        lines = console.splitlines()
        assert [line for line in lines if TENSORFLOW_LINE.search(line)] == []
        assert len(ready) == 2, console
        pids = set()
        for line in ready:
            match = READY.match(line)
            assert match, line
            pids.add(match.group(1))
            assert match.group(2) == server.url
            assert match.group(3) == version
            assert float(match.group(4)) == round(accuracy["test_accuracy"] * 100, 2)
            assert match.group(5) == str(db)
        assert len(pids) == 2, "one line per worker"
        assert lines[0].endswith(f"serving {server.url} with 2 workers (Ctrl-C stops)"), lines[0]
        stopped = [line for line in lines if line.endswith("mnist_api: stopped")]
        assert len(stopped) == 2, console
        # Uvicorn's start-up and shutdown chatter is replaced by the lines above.
        for chatter in ("Started server process", "Waiting for application", "Uvicorn running"):
            assert chatter not in console
        assert len(lines) <= 8, console

    def test_workers_starting_together_on_an_empty_sqlite_path_are_all_ready(
        self, model_root: Path, tmp_path: Path
    ) -> None:
        """Every worker creates the database at the same moment: none of them may fail (one
        failure takes the whole server down). Without a model to load the workers reach the
        store closer together than in a normal start, which makes the race likelier."""
        failures = []
        for attempt in range(STARTS):
            db = tmp_path / f"start-{attempt}" / "predictions.sqlite3"
            env = api_env(model_root, sqlite_path=str(db), inference_mode="off")
            server = LiveServer(env, tmp_path / f"start-{attempt}.log", workers=STARTS_WORKERS)
            try:
                server.wait_ready(60)
                deadline = time.monotonic() + 60
                while server.console.count("mnist_api: ready on") < STARTS_WORKERS:
                    if server.process.poll() is not None or time.monotonic() > deadline:
                        failures.append(f"start {attempt}: {server.console[-1500:]}")
                        break
                    time.sleep(0.1)
            finally:
                server.stop()
        assert failures == []
