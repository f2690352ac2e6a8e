"""The learning loop, end to end, on a running two-worker server that needs keys:

digits written between two lines (a way of writing MNIST lacks; most come back wrong) are
uploaded and corrected through the API; ``mnist-api export-labels`` exports the corrections;
``mnist-train train --init --extra`` fine-tunes the serving model on MNIST with them mixed in;
``mnist-train compare`` finds it better on the held-out corrections and no worse on MNIST;
``mnist-train promote`` moves ``models/LATEST``; both workers swap it in without a restart; new
lined digits, never seen, now come back right far more often, with the new model's version."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from mnist_core.artifact import read_metadata
from mnist_train.data import Mnist
from tests.fixtures.servers import SecuredServer, api_env, clean_env, mnist_api
from tests.fixtures.styles import lined

pytestmark = pytest.mark.slow
CORRECTED = 600  # lined training digits, uploaded and corrected
PROBES = 200  # lined test digits, uploaded before and after


def mnist_train(mnist_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mnist_train", *args],
        env=clean_env(MNIST_DATA_DIR=str(mnist_dir)),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def upload(url: str, key: str, png: bytes) -> dict[str, object]:
    """On a connection of its own: the kernel hands each new connection to either worker."""
    answer = httpx.post(
        f"{url}/v1/predictions",
        files={"file": ("lined.png", png, "image/png")},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, object] = answer.json()
    return body


def accuracy(url: str, key: str, mnist: Mnist) -> tuple[float, set[object]]:
    """Lined test digits (seeds the corrections never used): share right, versions seen."""
    right, versions = 0, set()
    for i in range(PROBES):
        answer = upload(url, key, lined(mnist.test_images[i], 1_000_000 + i))
        right += answer["digit"] == int(mnist.test_labels[i])
        versions.add(answer["model_version"])
    return right / PROBES, versions


def test_corrections_become_a_better_model_that_serves_without_a_restart(
    model_root: Path, mnist: Mnist, mnist_dir: Path, tmp_path: Path
) -> None:
    base_dir, base = read_metadata(model_root)
    models = tmp_path / "models"
    shutil.copytree(base_dir, models / base.version)
    (models / "LATEST").write_text(base.version + "\n")
    env = api_env(
        models, auth="required", sqlite_path=str(tmp_path / "store.sqlite3"), model_poll_s="0.5"
    )
    server = SecuredServer(env, tmp_path / "server.log", workers=2)
    try:
        server.wait_ready()
        user = server.key("labeller", "--rate", "2000/s", "--burst", "4000")
        admin = server.key("operator", "--scopes", "admin", "--rate", "100/s")
        before, versions = accuracy(server.url, user, mnist)
        assert versions == {base.version}
        assert before < 0.6, before  # the base model reads few lined digits

        # People upload lined digits and correct every answer to the digit they wrote.
        with httpx.Client(base_url=server.url, headers={"X-API-Key": user}) as http:
            for i in range(CORRECTED):
                png = lined(mnist.train_images[i], i)
                answer = http.post("/v1/predictions", files={"file": ("d.png", png)})
                assert answer.status_code == 201, answer.text
                label = {"label": int(mnist.train_labels[i])}
                done = http.put(f"/v1/predictions/{answer.json()['id']}/label", json=label)
                assert done.status_code == 200, done.text
            owner = http.get("/v1/keys/me").json()["id"]

        corrections = tmp_path / "corrections.npz"
        exported = mnist_api(env, "export-labels", "--out", str(corrections), "--owner", owner)
        assert exported.returncode == 0, exported.stderr
        assert exported.stdout.startswith(f"exported {CORRECTED} labelled predictions"), (
            exported.stdout
        )

        candidates = tmp_path / "candidates"
        trained = mnist_train(
            mnist_dir, "train", "--init", str(models), "--extra", str(corrections),
            "--epochs", "1", "--seed", "3", "--output", str(candidates),
        )  # fmt: skip
        assert trained.returncode == 0, trained.stderr[-3000:]
        assert "fine-tuned from: " + base.version in trained.stdout

        compared = mnist_train(
            mnist_dir, "compare", str(candidates), str(models), "--extra", str(corrections)
        )
        print(compared.stdout)  # the before/after figures, in the test's log
        assert compared.returncode == 0, compared.stdout + compared.stderr
        assert "verdict: the candidate wins" in compared.stdout

        promoted = mnist_train(mnist_dir, "promote", str(candidates), str(models))
        assert promoted.returncode == 0, promoted.stderr
        _, new = read_metadata(models)
        assert new.version != base.version
        assert new.init_from == base.version

        # Both workers swap it in: twenty uploads in a row, on fresh connections, answered by it.
        deadline, streak = time.monotonic() + 30, 0
        while streak < 20:
            assert time.monotonic() < deadline, server.console[-3000:]
            version = upload(server.url, user, lined(mnist.test_images[0], 7))["model_version"]
            streak = streak + 1 if version == new.version else 0
        after, versions = accuracy(server.url, user, mnist)
        print(f"lined test digits right: {before:.1%} before, {after:.1%} after")
        assert versions == {new.version}
        assert after >= before + 0.25, (before, after)

        served = httpx.get(f"{server.url}/v1/models", headers={"X-API-Key": user}).json()
        training = served["serving"]["training"]
        assert served["serving"]["version"] == new.version
        assert training["fine_tuned_from"] == base.version
        held_out = training["corrections"]["held_out"]
        assert training["corrections"]["examples"] + held_out == CORRECTED

        # Only an administrator reloads; nothing changed since the swap.
        refused = httpx.post(f"{server.url}/v1/models/reload", headers={"X-API-Key": user})
        assert refused.status_code == 403
        reloaded = httpx.post(f"{server.url}/v1/models/reload", headers={"X-API-Key": admin})
        assert reloaded.json() == {
            "changed": False, "version": new.version, "previous": new.version,
        }  # fmt: skip
        console = server.console
        assert console.count(f"model {new.version} now serving") == 2, console[-3000:]
    finally:
        server.stop()
