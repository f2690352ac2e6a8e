"""``/v1/models`` and live rollout in one worker: the model serving and its metadata; a new
artifact named by ``LATEST`` swapped in between batches while uploads keep coming (every one
answered, each by the model that computed it); an artifact that cannot be loaded refused once,
with the old model serving on; ``mnist-train promote``."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

import httpx
import pytest

from mnist_core.artifact import LITE_FILE, promote, read_metadata
from mnist_core.errors import ArtifactError
from mnist_train.train import TrainResult
from tests.fixtures.apps import asgi_client, running_app

pytestmark = pytest.mark.asyncio(loop_scope="session")
POLL_S = 0.2


@pytest.fixture
def models(model_root: Path, tmp_path: Path) -> Path:
    """A models folder of its own, serving a copy of the session's CNN."""
    directory, meta = read_metadata(model_root)
    root = tmp_path / "models"
    shutil.copytree(directory, root / meta.version)
    (root / "LATEST").write_text(meta.version + "\n")
    return root


async def upload_all(http: httpx.AsyncClient, png: bytes, count: int) -> list[str]:
    """``count`` uploads at once; the versions that answered them."""

    async def one() -> str:
        answer = await http.post("/v1/predictions", files={"file": ("d.png", png)})
        assert answer.status_code == 201, answer.text
        return str(answer.json()["model_version"])

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def serving(http: httpx.AsyncClient) -> str:
    return str((await http.get("/v1/models")).json()["serving"]["version"])


class TestGetModels:
    async def test_the_model_serving_and_its_training(self, models: Path, tmp_path: Path) -> None:
        _, meta = read_metadata(models)
        async with (
            running_app(models, sqlite_path=tmp_path / "s.sqlite3") as app,
            asgi_client(app) as http,
        ):
            answer = await http.get("/v1/models")
        assert answer.status_code == 200
        info = answer.json()["serving"]
        assert info["version"] == meta.version
        assert info["model_type"] == "cnn"
        assert info["runtime"] == "litert"
        assert info["test_accuracy"] == meta.test_accuracy
        assert info["per_class_accuracy"] == meta.per_class_accuracy
        assert info["training"] == {
            "train_examples": 12000, "validation_examples": 5000, "epochs": 2, "ensemble": 1,
            "seed": 7, "training_seconds": meta.training_seconds, "fine_tuned_from": None,
            "corrections": None,
        }  # fmt: skip
        assert meta.calibration is not None
        assert info["calibration"] == {
            "temperature": meta.calibration.temperature,
            "test_ece_before": meta.calibration.test_ece_before,
            "test_ece_after": meta.calibration.test_ece_after,
        }


class TestRollout:
    async def test_swaps_between_batches_while_uploads_continue(
        self, models: Path, softmax_run: TrainResult, golden: dict[int, bytes], tmp_path: Path
    ) -> None:
        _, old = read_metadata(models)
        new = softmax_run.metadata
        async with (
            running_app(models, sqlite_path=tmp_path / "s.sqlite3", model_poll_s=POLL_S) as app,
            asgi_client(app) as http,
        ):
            assert set(await upload_all(http, golden[3], 20)) == {old.version}
            promote(softmax_run.artifact_dir, models)
            waves: list[set[str]] = []
            for _ in range(100):  # uploads go on while the watcher loads and swaps
                waves.append(set(await upload_all(http, golden[3], 8)))
                if waves[-1] == {new.version}:
                    break
            assert set().union(*waves) == {old.version, new.version}
            first = next(i for i, wave in enumerate(waves) if new.version in wave)
            for wave in waves[first + 1 :]:
                assert wave == {new.version}  # once it answered, never the old one again
            assert set(await upload_all(http, golden[3], 20)) == {new.version}
            assert await serving(http) == new.version
            reload = await http.post("/v1/models/reload")
            assert reload.json() == {
                "changed": False, "version": new.version, "previous": new.version,
            }  # fmt: skip

    async def test_a_broken_model_is_refused_once_and_the_old_one_serves_on(
        self,
        models: Path,
        softmax_run: TrainResult,
        golden: dict[int, bytes],
        tmp_path: Path,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        _, old = read_metadata(models)
        broken = models / "broken"
        shutil.copytree(softmax_run.artifact_dir, broken)
        (broken / LITE_FILE).write_bytes(b"not a model")
        async with (
            running_app(models, sqlite_path=tmp_path / "s.sqlite3", model_poll_s=POLL_S) as app,
            asgi_client(app) as http,
        ):
            with caplog.at_level(logging.WARNING, logger="mnist_api"):
                (models / "LATEST").write_text("broken\n")
                refused = await http.post("/v1/models/reload")
                await asyncio.sleep(POLL_S * 5)  # polls that must not try it again
                assert set(await upload_all(http, golden[5], 10)) == {old.version}
            assert refused.status_code == 409
            problem = refused.json()
            assert problem["type"] == "/problems/model-refused"
            assert f"{old.version} goes on serving" in problem["detail"]
            assert await serving(http) == old.version
            refusals = [r for r in caplog.records if "refused" in r.getMessage()]
            assert len(refusals) == 1, [r.getMessage() for r in refusals]
            assert f"{old.version} goes on serving" in refusals[0].getMessage()
            metrics = (await http.get("/metrics")).text
            assert 'mnist_model_reloads_total{outcome="refused"} 1.0' in metrics

            # LATEST names a good one again: the watch swaps it in.
            promote(softmax_run.artifact_dir, models)
            for _ in range(50):
                if await serving(http) == softmax_run.metadata.version:
                    break
                await asyncio.sleep(POLL_S)
            assert await serving(http) == softmax_run.metadata.version


async def test_promote_refuses_an_artifact_without_its_litert_model(
    softmax_run: TrainResult, tmp_path: Path
) -> None:
    bare = tmp_path / "bare"
    shutil.copytree(softmax_run.artifact_dir, bare)
    (bare / LITE_FILE).unlink()
    with pytest.raises(ArtifactError, match=r"has no model\.tflite"):
        promote(bare, tmp_path / "models")
    assert not (tmp_path / "models" / "LATEST").exists()
