"""``mnist-api export-labels``: uploads labelled through the API come out of the store the
settings name as a corrections file that ``mnist_core.corrections`` reads back: the model's
input, the label, the prediction, the id, the times, the model and the owner of each; unlabelled
uploads stay out; filters and mistakes answered in one line."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnist_core.corrections import is_held_out, load_corrections
from tests.fixtures.apps import asgi_client, running_app
from tests.fixtures.servers import api_env, mnist_api


@pytest.mark.asyncio(loop_scope="session")
async def test_labelled_uploads_come_out_as_corrections(
    model_root: Path, golden: dict[int, bytes], tmp_path: Path
) -> None:
    sqlite = tmp_path / "store.sqlite3"
    started = datetime.now(UTC)
    predictions = {}
    async with running_app(model_root, sqlite_path=sqlite) as app, asgi_client(app) as http:
        for digit, png in golden.items():
            answer = await http.post("/v1/predictions", files={"file": ("d.png", png)})
            assert answer.status_code == 201, answer.text
            predictions[digit] = answer.json()
        for digit in range(7):  # 7, 8 and 9 stay unlabelled
            pid = predictions[digit]["id"]
            label = (digit + 1) % 10  # a correction, whatever the model said
            done = await http.put(f"/v1/predictions/{pid}/label", json={"label": label})
            assert done.status_code == 200, done.text
        inputs = {}
        for digit in range(7):
            png = await http.get(f"/v1/predictions/{predictions[digit]['id']}/input.png")
            inputs[predictions[digit]["id"]] = np.asarray(Image.open(io.BytesIO(png.content)))

    env = api_env(model_root, sqlite_path=str(sqlite))
    out = tmp_path / "exports" / "corrections.npz"
    done = mnist_api(env, "export-labels", "--out", str(out))
    assert done.returncode == 0, done.stderr
    held = sum(is_held_out(pid) for pid in inputs)
    assert done.stdout.strip() == (
        f"exported 7 labelled predictions to {out} ({held} of them held out for mnist-train "
        "compare)"
    )
    corrections = load_corrections(out)
    assert len(corrections) == 7
    by_digit = {p["id"]: (digit, p) for digit, p in predictions.items()}
    for row, pid in enumerate(corrections.ids):
        digit, prediction = by_digit[str(pid)]
        assert corrections.labels[row] == (digit + 1) % 10
        assert corrections.predicted[row] == prediction["digit"]
        assert corrections.model_versions[row] == prediction["model_version"]
        assert corrections.owners[row] == "anonymous"
        np.testing.assert_array_equal(corrections.images[row], inputs[str(pid)])
        created = datetime.fromisoformat(prediction["created_at"])
        assert corrections.created_at_ms[row] == int(created.timestamp() * 1000)
        labelled = datetime.fromtimestamp(corrections.labeled_at_ms[row] / 1000, UTC)
        assert started - timedelta(seconds=1) <= labelled <= datetime.now(UTC)
    assert list(corrections.labeled_at_ms) == sorted(corrections.labeled_at_ms)
    trained, held_out = corrections.split()
    assert (len(trained), len(held_out)) == (7 - held, held)

    # Labelled later than now: none. An owner with nothing: none, and still a valid file.
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    for options in (["--since", later], ["--owner", "0123456789ab"]):
        empty = tmp_path / "empty.npz"
        done = mnist_api(env, "export-labels", "--out", str(empty), *options)
        assert done.returncode == 0, done.stderr
        assert len(load_corrections(empty)) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["corrections.npz"]  # no leftovers


def test_mistakes_are_one_line(model_root: Path, tmp_path: Path) -> None:
    env = api_env(model_root, sqlite_path=str(tmp_path / "s.sqlite3"))
    out = str(tmp_path / "c.npz")
    bad_time = mnist_api(env, "export-labels", "--out", out, "--since", "yesterday")
    assert bad_time.returncode == 2
    assert bad_time.stderr.strip().splitlines()[-1] == (
        "mnist-api export-labels: error: argument --since: 'yesterday' is not a time "
        "(ISO 8601, e.g. 2026-12-01 or 2026-12-01T12:00:00Z)"
    )
    reversed_range = mnist_api(
        env, "export-labels", "--out", out, "--since", "2026-12-02", "--before", "2026-12-01"
    )
    assert reversed_range.returncode == 1
    assert reversed_range.stderr.strip() == (
        "mnist-api: error: --since must be earlier than --before"
    )
    nothing = mnist_api(env | {"MNIST_API_STORE": "none"}, "export-labels", "--out", out)
    assert nothing.returncode == 1
    assert nothing.stderr.strip() == (
        "mnist-api: error: MNIST_API_STORE=none keeps no predictions to export"
    )
    assert not Path(out).exists()
