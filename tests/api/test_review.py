"""The review queue: the caller's flagged, unlabelled predictions, least confident first; a
label (a digit, or "not a digit") takes an item off, and "not a digit" labels are exported for
the learning loop as negatives."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from mnist_api.kernel.settings import load_settings
from mnist_api.predictions.export import export_labels
from mnist_core.corrections import load_corrections
from mnist_core.verdicts import NOT_A_DIGIT_LABEL
from tests.api.test_verdicts import noise_page, scribble, upload
from tests.fixtures.apps import asgi_client, running_app

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def whole_queue(http: httpx.AsyncClient, limit: int = 2) -> list[dict[str, object]]:
    items: list[dict[str, object]] = []
    cursor = None
    for _ in range(100):
        params: dict[str, object] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        answer = await http.get("/v1/review", params=params)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("the review queue never ended")


class TestReviewQueue:
    async def test_flagged_first_then_labelled_off_and_exported(
        self, model_root: Path, golden: dict[int, bytes], tmp_path: Path
    ) -> None:
        sqlite = tmp_path / "s.sqlite3"
        async with (
            running_app(model_root, sqlite_path=sqlite) as app,
            asgi_client(app) as http,
        ):
            digits = [await upload(http, data) for data in golden.values()]
            odd = [await upload(http, noise_page(seed)) for seed in range(4)]
            odd += [await upload(http, scribble(seed)) for seed in range(4)]
            flagged = [b for b in digits + odd if b["verdict"] != "digit"]
            assert {b["id"] for b in odd if b["verdict"] != "digit"} <= {b["id"] for b in flagged}
            assert len(flagged) >= 6

            queue = await whole_queue(http)
            assert [item["id"] for item in queue] == [
                b["id"]
                for b in sorted(flagged, key=lambda b: float(b["confidence"]))  # type: ignore[arg-type]
            ]
            assert all(item["label"] is None for item in queue)

            nothing = await http.put(f"/v1/predictions/{queue[0]['id']}/not-a-digit")
            assert nothing.status_code == 200, nothing.text
            assert nothing.json()["label"] is None
            assert nothing.json()["labeled_not_a_digit"] is True
            assert nothing.json()["labeled_at"] is not None
            digit = await http.put(f"/v1/predictions/{queue[1]['id']}/label", json={"label": 3})
            assert digit.json()["labeled_not_a_digit"] is False
            after = await whole_queue(http, limit=3)
            assert [item["id"] for item in after] == [item["id"] for item in queue[2:]]

            labelled = await http.get("/v1/predictions", params={"labeled": "true"})
            kinds = {
                i["id"]: (i["label"], i["labeled_not_a_digit"]) for i in labelled.json()["items"]
            }
            assert kinds == {queue[0]["id"]: (None, True), queue[1]["id"]: (3, False)}

        exported = await export_labels(
            load_settings(model_path=model_root, sqlite_path=sqlite, auth="off"),
            tmp_path / "corrections.npz",
        )
        assert exported.count == 2
        corrections = load_corrections(tmp_path / "corrections.npz")
        by_id = dict(zip(corrections.ids.tolist(), corrections.labels.tolist(), strict=True))
        assert by_id == {queue[0]["id"]: NOT_A_DIGIT_LABEL, queue[1]["id"]: 3}
        assert np.asarray(corrections.images).shape == (2, 28, 28)

    @pytest.mark.parametrize("body", [{}, {"label": 3, "not_a_digit": True}, {"label": None}])
    async def test_a_label_is_a_digit(
        self, model_root: Path, golden: dict[int, bytes], tmp_path: Path, body: object
    ) -> None:
        async with (
            running_app(model_root, sqlite_path=tmp_path / "s.sqlite3") as app,
            asgi_client(app) as http,
        ):
            made = await upload(http, golden[2])
            answer = await http.put(f"/v1/predictions/{made['id']}/label", json=body)
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == "application/problem+json"

    @pytest.mark.parametrize("cursor", ["x" * 32, "A" * 31, "W29fep7JEfCdLgscLT5PUA"])
    async def test_a_malformed_cursor_is_a_400(
        self, model_root: Path, tmp_path: Path, cursor: str
    ) -> None:
        async with (
            running_app(model_root, sqlite_path=tmp_path / "s.sqlite3") as app,
            asgi_client(app) as http,
        ):
            answer = await http.get("/v1/review", params={"cursor": cursor})
        assert answer.status_code == 400, answer.text
        assert answer.json()["type"] == "/problems/invalid-cursor"
