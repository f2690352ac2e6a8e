"""The two serving runtimes: LiteRT (the default, the artifact's ``model.tflite``, no TensorFlow
in the process) and TensorFlow (``MNIST_API_RUNTIME=tensorflow``, ``model.keras``) answer the
same uploads with the same digits and probabilities."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.apps import asgi_client, running_app
from tests.fixtures.servers import clean_env


async def answers(
    model_root: Path, tmp_path: Path, golden: dict[int, bytes], runtime: str
) -> list[dict[str, Any]]:
    async with (
        running_app(
            model_root, runtime=runtime, sqlite_path=tmp_path / f"{runtime}.sqlite3"
        ) as served,
        asgi_client(served) as client,
    ):
        bodies = []
        for digit in range(10):
            response = await client.post(
                "/v1/predictions", files={"file": ("d.png", golden[digit], "image/png")}
            )
            assert response.status_code == 201, response.text
            bodies.append(response.json())
        return bodies


@pytest.mark.asyncio(loop_scope="session")
async def test_both_runtimes_read_every_golden_digit_alike(
    model_root: Path, tmp_path: Path, golden: dict[int, bytes]
) -> None:
    lite = await answers(model_root, tmp_path, golden, "litert")
    tensorflow = await answers(model_root, tmp_path, golden, "tensorflow")
    assert [body["digit"] for body in lite] == list(range(10))
    assert [body["digit"] for body in tensorflow] == list(range(10))
    for a, b in zip(lite, tensorflow, strict=True):
        assert a["model_version"] == b["model_version"]
        assert (
            max(abs(x - y) for x, y in zip(a["probabilities"], b["probabilities"], strict=True))
            < 1e-5
        )


# The service as installed without the training extra: TensorFlow cannot be imported at all.
WITHOUT_TENSORFLOW = """
import asyncio, importlib.abc, json, sys
from pathlib import Path
from typing import Any

class NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoTensorFlow())

import httpx
from mnist_api.app import create_app
from mnist_api.kernel.settings import load_settings

async def main():
    model, sqlite, image = sys.argv[1:4]
    app = create_app(load_settings(model_path=Path(model), sqlite_path=Path(sqlite), auth="off"))
    async with app.router.lifespan_context(app) as state:
        async def served(scope, receive, send):  # the lifespan's state, as uvicorn hands it
            await app({**scope, "state": dict(state)}, receive, send)

        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.post(
                "/v1/predictions", files={"file": ("d.png", Path(image).read_bytes(), "image/png")}
            )
    rss = next(l for l in open("/proc/self/status") if l.startswith("VmRSS:")).split()[1]
    print(json.dumps({
        "status": response.status_code,
        "digit": response.json().get("digit"),
        "loaded": sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")),
        "rss_kib": int(rss),
    }))

asyncio.run(main())
"""


def test_the_service_runs_without_tensorflow(
    model_root: Path, tmp_path: Path, golden: dict[int, bytes]
) -> None:
    image = tmp_path / "seven.png"
    image.write_bytes(golden[7])
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            WITHOUT_TENSORFLOW,
            str(model_root),
            str(tmp_path / "s.sqlite3"),
            str(image),
        ],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["status"] == 201
    assert report["digit"] == 7
    assert report["loaded"] == []
    # Python, NumPy, Pillow, FastAPI and LiteRT: far from TensorFlow's 700 MB.
    assert report["rss_kib"] < 250 * 1024, report


def test_the_tensorflow_runtime_says_when_tensorflow_is_missing(
    model_root: Path, tmp_path: Path
) -> None:
    script = WITHOUT_TENSORFLOW.split("import httpx")[0] + (
        "from mnist_api.kernel.settings import load_settings\n"
        "from mnist_api.models.registry import load_classifier\n"
        "from mnist_core.errors import MnistError\n"
        "try:\n"
        "    load_classifier(Path(sys.argv[1]), load_settings(runtime='tensorflow', auth='off'))\n"
        "except MnistError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(model_root)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == (
        "TensorFlow is not installed: training and MNIST_API_RUNTIME=tensorflow need it "
        "(pip install 'mnist-service[train]'); the service itself runs on LiteRT"
    )
