"""The v1 API over ASGI with a real trained model and a real SQLite store."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import re
import uuid
import zlib
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from mnist_core.imaging import from_bytes
from mnist_train.data import Mnist
from tests.fixtures.apps import asgi_client, running_app
from tests.fixtures.data import render

pytestmark = pytest.mark.asyncio(loop_scope="session")
PROBLEM = "application/problem+json"


async def upload(client: httpx.AsyncClient, data: bytes, name: str = "digit.png") -> httpx.Response:
    return await client.post("/v1/predictions", files={"file": (name, data, "image/png")})


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == f"/problems/{slug}"
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return dict(body)


async def count(client: httpx.AsyncClient) -> int:
    total, cursor = 0, None
    while True:
        params = {"limit": 100} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/v1/predictions", params=params)).json()
        total += len(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return total


class TestCreatePrediction:
    @pytest.mark.parametrize("digit", range(10))
    async def test_golden_digit(
        self, client: httpx.AsyncClient, golden: dict[int, bytes], digit: int
    ) -> None:
        response = await upload(client, golden[digit])
        assert response.status_code == 201, response.text
        body = response.json()
        assert response.headers["location"] == f"/v1/predictions/{body['id']}"
        assert body["digit"] == digit
        assert len(body["probabilities"]) == 10
        assert sum(body["probabilities"]) == pytest.approx(1.0, abs=1e-6)
        assert body["confidence"] == max(body["probabilities"])
        assert body["confidence"] == body["probabilities"][digit]
        assert body["label"] is None
        assert body["image"] == {
            "content_type": "image/png",
            "width": 280,
            "height": 280,
            "size_bytes": len(golden[digit]),
            "sha256": hashlib.sha256(golden[digit]).hexdigest(),
        }
        created = datetime.fromisoformat(body["created_at"])
        assert created.utcoffset() is not None
        assert abs((datetime.now(UTC) - created).total_seconds()) < 30
        assert uuid.UUID(body["id"]).version == 1

    @pytest.mark.parametrize(
        ("fmt", "mode", "invert"),
        [
            ("PNG", "RGBA", False),
            ("PNG", "P", False),
            ("PNG", "1", False),
            ("PNG", "I;16", False),
            ("PNG", None, True),
            ("JPEG", None, False),
            ("JPEG", "CMYK", False),
            ("GIF", None, False),
            ("BMP", None, True),
            ("WEBP", None, False),
            ("TIFF", None, False),
            ("TIFF", "I;16", True),
        ],
    )
    async def test_formats_modes_and_polarities(
        self,
        client: httpx.AsyncClient,
        golden: dict[int, bytes],
        fmt: str,
        mode: str | None,
        invert: bool,
    ) -> None:
        data = render(golden[4], fmt, mode, invert)
        response = await upload(client, data, f"four.{fmt.lower()}")
        assert response.status_code == 201, response.text
        assert response.json()["digit"] == 4
        assert response.json()["image"]["content_type"] == f"image/{fmt.lower()}"

    async def test_transparent_background_is_white_paper(self, client: httpx.AsyncClient) -> None:
        image = Image.new("RGBA", (120, 160), (0, 0, 0, 0))  # transparent *black*
        ink = Image.new("RGBA", (16, 120), (0, 0, 0, 255))
        image.paste(ink, (52, 20))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        response = await upload(client, buffer.getvalue())
        assert response.status_code == 201, response.text
        assert response.json()["digit"] == 1

    async def test_real_mnist_test_digits(self, client: httpx.AsyncClient, mnist: Mnist) -> None:
        rng = np.random.default_rng(3)
        indices = rng.choice(len(mnist.test_labels), 60, replace=False)
        correct = 0
        for n, index in enumerate(indices):
            pixels = mnist.test_images[index]
            if n % 2:  # half of them dark ink on light paper, as a scan would be
                pixels = 255 - pixels
            big = Image.fromarray(pixels).resize((112, 112), Image.Resampling.BICUBIC)
            buffer = io.BytesIO()
            big.save(buffer, format=["PNG", "JPEG", "WEBP"][n % 3])
            response = await upload(client, buffer.getvalue())
            assert response.status_code == 201, response.text
            correct += response.json()["digit"] == int(mnist.test_labels[index])
        assert correct >= 55, f"{correct}/60"

    async def test_upload_is_stored_with_its_images(
        self, client: httpx.AsyncClient, golden: dict[int, bytes]
    ) -> None:
        created = (await upload(client, golden[6])).json()
        fetched = await client.get(f"/v1/predictions/{created['id']}")
        assert fetched.status_code == 200
        assert fetched.json() == created
        original = await client.get(f"/v1/predictions/{created['id']}/image")
        assert original.status_code == 200
        assert original.headers["content-type"] == "image/png"
        assert original.content == golden[6]
        seen = await client.get(f"/v1/predictions/{created['id']}/input.png")
        assert seen.headers["content-type"] == "image/png"
        model_input = np.asarray(Image.open(io.BytesIO(seen.content)))
        assert model_input.shape == (28, 28)
        np.testing.assert_array_equal(model_input, from_bytes(golden[6]))


class TestUploadErrors:
    async def test_missing_field(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/v1/predictions", files={"image": ("a.png", b"x")})
        body = assert_problem(response, 422, "validation-error")
        assert body["errors"] == [
            {"loc": ["body", "file"], "msg": "Field required", "type": "missing"}
        ]

    async def test_not_multipart(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/v1/predictions", json={"file": "x"})
        assert_problem(response, 422, "validation-error")

    async def test_empty_file(self, client: httpx.AsyncClient) -> None:
        assert_problem(await upload(client, b""), 422, "empty-file")

    async def test_not_an_image(self, client: httpx.AsyncClient) -> None:
        response = await upload(client, b"%PDF-1.4 definitely not a picture", "doc.png")
        assert_problem(response, 422, "invalid-image")

    async def test_truncated_image(
        self, client: httpx.AsyncClient, golden: dict[int, bytes]
    ) -> None:
        assert_problem(await upload(client, golden[2][: len(golden[2]) // 2]), 422, "invalid-image")

    async def test_corrupt_image(self, client: httpx.AsyncClient, golden: dict[int, bytes]) -> None:
        data = bytearray(render(golden[2], "JPEG"))
        data[200:400] = bytes(200)
        response = await upload(client, bytes(data))
        assert response.status_code in (201, 422), response.text  # JPEG may decode garbage
        data = bytearray(golden[2])
        data[100:140] = b"\xff" * 40  # breaks the PNG's zlib stream and CRC
        assert_problem(await upload(client, bytes(data)), 422, "invalid-image")

    async def test_unsupported_type(
        self, client: httpx.AsyncClient, golden: dict[int, bytes]
    ) -> None:
        body = assert_problem(
            await upload(client, render(golden[2], "PCX"), "two.pcx"), 415, "unsupported-image-type"
        )
        assert "PCX" in str(body["detail"])

    async def test_over_the_size_limit(self, client: httpx.AsyncClient) -> None:
        response = await upload(client, b"\x89PNG" + bytes(6 * 1024 * 1024))
        body = assert_problem(response, 413, "upload-too-large")
        assert "limit" in str(body["detail"])

    async def test_over_the_limit_without_content_length(self, client: httpx.AsyncClient) -> None:
        sent = 0

        async def body() -> object:
            nonlocal sent
            yield b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
            for _ in range(1000):  # up to 64 MB, never all sent
                sent += 65536
                yield bytes(65536)
            yield b"\r\n--xyz--\r\n"

        response = await client.post(
            "/v1/predictions",
            content=body(),  # type: ignore[arg-type]
            headers={"content-type": "multipart/form-data; boundary=xyz"},
        )
        assert_problem(response, 413, "upload-too-large")
        assert sent < 8 * 1024 * 1024  # refused while reading, not after buffering it all

    async def test_decompression_bomb(self, client: httpx.AsyncClient) -> None:
        width = height = 5000  # 25 million pixels in a few kilobytes
        raw = zlib.compress(b"".join(b"\x00" + bytes(width // 8) for _ in range(height)), 9)

        def chunk(kind: bytes, payload: bytes) -> bytes:
            crc = zlib.crc32(kind + payload).to_bytes(4, "big")
            return len(payload).to_bytes(4, "big") + kind + payload + crc

        header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([1, 0, 0, 0, 0])
        png = (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", raw)
            + chunk(b"IEND", b"")
        )
        assert len(png) < 100_000
        assert_problem(await upload(client, png), 413, "too-many-pixels")

    @pytest.mark.parametrize("level", [0, 255, 128])
    async def test_blank_image(self, client: httpx.AsyncClient, level: int) -> None:
        buffer = io.BytesIO()
        Image.new("L", (200, 200), level).save(buffer, format="PNG")
        assert_problem(await upload(client, buffer.getvalue()), 422, "no-ink")

    async def test_nothing_is_stored_for_rejected_uploads(
        self, fresh_client: httpx.AsyncClient, golden: dict[int, bytes]
    ) -> None:
        for data in (b"", b"text", golden[1][:300], bytes(6 * 1024 * 1024)):
            assert (await upload(fresh_client, data)).status_code >= 400
        assert await count(fresh_client) == 0


class TestLegacyUpload:
    async def test_original_endpoint(
        self, client: httpx.AsyncClient, golden: dict[int, bytes]
    ) -> None:
        response = await client.post("/upload", files={"file": ("digit.png", golden[9])})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["digit"] == 9
        assert (await client.get(f"/v1/predictions/{body['id']}")).status_code == 200

    async def test_original_endpoint_errors_are_problems(self, client: httpx.AsyncClient) -> None:
        assert_problem(
            await client.post("/upload", files={"file": ("x", b"nope")}), 422, "invalid-image"
        )


class TestBatch:
    async def test_one_result_per_file(
        self, client: httpx.AsyncClient, golden: dict[int, bytes]
    ) -> None:
        files = [
            ("files", ("two.png", golden[2], "image/png")),
            ("files", ("notes.txt", b"hello", "text/plain")),
            ("files", ("eight.png", golden[8], "image/png")),
        ]
        response = await client.post("/v1/predictions/batch", files=files)
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        assert [i["status"] for i in items] == [201, 422, 201]
        assert [i["filename"] for i in items] == ["two.png", "notes.txt", "eight.png"]
        assert items[0]["prediction"]["digit"] == 2
        assert items[2]["prediction"]["digit"] == 8
        assert items[1]["problem"]["type"] == "/problems/invalid-image"
        assert items[1]["prediction"] is None
        for item in (items[0], items[2]):
            stored = await client.get(f"/v1/predictions/{item['prediction']['id']}")
            assert stored.status_code == 200

    async def test_bounded_number_of_files(
        self, client: httpx.AsyncClient, golden: dict[int, bytes]
    ) -> None:
        files = [("files", (f"{n}.png", golden[1], "image/png")) for n in range(17)]
        assert_problem(
            await client.post("/v1/predictions/batch", files=files), 422, "too-many-files"
        )


class TestHistory:
    async def test_newest_first_with_cursor(
        self, fresh_client: httpx.AsyncClient, golden: dict[int, bytes]
    ) -> None:
        ids = [(await upload(fresh_client, golden[d % 10])).json()["id"] for d in range(7)]
        listed, cursor, pages = [], None, 0
        while True:
            params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
            page = (await fresh_client.get("/v1/predictions", params=params)).json()
            listed += [item["id"] for item in page["items"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert listed == ids[::-1]
        assert pages == 3

    async def test_filters(self, fresh_client: httpx.AsyncClient, golden: dict[int, bytes]) -> None:
        made = {d: (await upload(fresh_client, golden[d])).json()["id"] for d in (1, 3, 3, 5)}
        threes = (await fresh_client.get("/v1/predictions", params={"digit": 3})).json()["items"]
        assert [i["digit"] for i in threes] == [3, 3]
        await fresh_client.put(f"/v1/predictions/{made[5]}/label", json={"label": 6})
        labeled = (await fresh_client.get("/v1/predictions", params={"labeled": "true"})).json()
        assert [i["id"] for i in labeled["items"]] == [made[5]]
        assert labeled["items"][0]["label"] == 6
        unlabeled = (await fresh_client.get("/v1/predictions?labeled=false")).json()["items"]
        assert made[5] not in {i["id"] for i in unlabeled}
        assert len(unlabeled) == 3

    @pytest.mark.parametrize(
        ("query", "status", "slug"),
        [
            ("cursor=not-a-cursor", 400, "invalid-cursor"),
            ("cursor=", 400, "invalid-cursor"),
            ("cursor=AAAAAAAAAAAAAAAAAAAAAA", 400, "invalid-cursor"),  # a UUID, but not version 1
            ("limit=0", 422, "validation-error"),
            ("limit=101", 422, "validation-error"),
            ("digit=10", 422, "validation-error"),
            ("labeled=maybe", 422, "validation-error"),
        ],
    )
    async def test_bad_queries(
        self, client: httpx.AsyncClient, query: str, status: int, slug: str
    ) -> None:
        assert_problem(await client.get(f"/v1/predictions?{query}"), status, slug)


class TestOnePrediction:
    async def test_unknown_and_malformed_ids(self, client: httpx.AsyncClient) -> None:
        unknown = uuid.uuid1()
        for suffix in ("", "/image", "/input.png"):
            assert_problem(
                await client.get(f"/v1/predictions/{unknown}{suffix}"), 404, "prediction-not-found"
            )
        # Only a UUID names a prediction: anything else is no address of this API.
        for malformed in ("12345", "not-a-uuid", "batch"):
            assert_problem(await client.get(f"/v1/predictions/{malformed}/image"), 404, "not-found")
        assert_problem(await client.get("/v1/predictions/12345"), 404, "not-found")
        assert_problem(
            await client.delete(f"/v1/predictions/{unknown}"), 404, "prediction-not-found"
        )
        response = await client.put(f"/v1/predictions/{unknown}/label", json={"label": 1})
        assert_problem(response, 404, "prediction-not-found")

    async def test_label(self, client: httpx.AsyncClient, golden: dict[int, bytes]) -> None:
        created = (await upload(client, golden[3])).json()
        response = await client.put(f"/v1/predictions/{created['id']}/label", json={"label": 5})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["label"] == 5
        labeled_at = datetime.fromisoformat(body["labeled_at"])
        assert abs((datetime.now(UTC) - labeled_at).total_seconds()) < 30
        assert (await client.get(f"/v1/predictions/{created['id']}")).json() == body

    @pytest.mark.parametrize(
        "payload",
        [
            {"label": 10},
            {"label": -1},
            {"label": "x"},
            {},
            {"label": 1, "x": 2},
            {"label": "3"},  # a JSON integer only: no strings, booleans or floats
            {"label": False},
            {"label": 3.0},
            [3],
        ],
    )
    async def test_bad_label(
        self, client: httpx.AsyncClient, golden: dict[int, bytes], payload: dict[str, object]
    ) -> None:
        created = (await upload(client, golden[3])).json()
        response = await client.put(f"/v1/predictions/{created['id']}/label", json=payload)
        assert_problem(response, 422, "validation-error")

    async def test_label_body_that_is_not_json(
        self, client: httpx.AsyncClient, golden: dict[int, bytes]
    ) -> None:
        created = (await upload(client, golden[3])).json()
        response = await client.put(
            f"/v1/predictions/{created['id']}/label",
            content=b'{"label": 3',
            headers={"content-type": "application/json"},
        )
        assert_problem(response, 400, "bad-request")

    async def test_delete(self, client: httpx.AsyncClient, golden: dict[int, bytes]) -> None:
        created = (await upload(client, golden[0])).json()
        response = await client.delete(f"/v1/predictions/{created['id']}")
        assert response.status_code == 204
        assert response.content == b""
        assert "content-type" not in response.headers
        assert (await client.get(f"/v1/predictions/{created['id']}")).status_code == 404
        assert (await client.get(f"/v1/predictions/{created['id']}/image")).status_code == 404


class TestOperations:
    async def test_health_and_readiness(self, client: httpx.AsyncClient, model_root: Path) -> None:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        body = ready.json()
        assert body["status"] == "ready"
        assert body["store"] == "sqlite"
        assert body["model_version"] == (model_root / "LATEST").read_text().strip()

    async def test_metrics(self, client: httpx.AsyncClient, golden: dict[int, bytes]) -> None:
        await upload(client, golden[7])
        await upload(client, b"junk")
        text = (await client.get("/metrics")).text
        assert (
            'mnist_http_requests_total{method="POST",route="/v1/predictions",status="201"}' in text
        )
        assert (
            'mnist_http_requests_total{method="POST",route="/v1/predictions",status="422"}' in text
        )
        assert (
            'mnist_http_request_duration_seconds_bucket{le="0.05",method="POST",route="/v1/predictions"}'
            in text
        )
        assert 'mnist_predictions_total{digit="7"}' in text
        assert "mnist_inference_batch_size_count" in text
        assert "mnist_inference_queue_depth" in text
        assert "mnist_store_errors_total" in text or "mnist_store_errors" in text

    async def test_unknown_route_is_a_problem(self, client: httpx.AsyncClient) -> None:
        assert_problem(await client.get("/v2/nothing"), 404, "not-found")
        assert_problem(await client.patch("/v1/predictions"), 405, "method-not-allowed")

    @pytest.mark.parametrize(
        ("method", "path", "allow"),
        [
            ("GET", "/v1/predictions/batch", "POST"),
            ("PATCH", "/v1/predictions", "GET, POST"),
            ("PATCH", f"/v1/predictions/{uuid.uuid1()}", "DELETE, GET"),
            ("POST", f"/v1/predictions/{uuid.uuid1()}/label", "PUT"),
            ("DELETE", f"/v1/predictions/{uuid.uuid1()}/image", "GET"),
            ("GET", "/upload", "POST"),
            ("OPTIONS", "/healthz", "GET"),
        ],
    )
    async def test_a_method_a_path_does_not_take_is_405_with_every_allowed_method(
        self, client: httpx.AsyncClient, method: str, path: str, allow: str
    ) -> None:
        response = await client.request(method, path)
        assert_problem(response, 405, "method-not-allowed")
        assert response.headers["allow"] == allow

    async def test_the_page_loads_its_scripts_as_es_modules(
        self, client: httpx.AsyncClient
    ) -> None:
        page = await client.get("/")
        assert '<script type="module" src="/static/js/main.js"></script>' in page.text
        imports = {"main.js"}
        seen: set[str] = set()
        while imports - seen:  # every module the entry module reaches, as a browser would
            name = sorted(imports - seen)[0]
            seen.add(name)
            script = await client.get(f"/static/js/{name}")
            assert script.status_code == 200, name
            # Browsers refuse a module served with any other type.
            assert script.headers["content-type"].split(";")[0] in (
                "text/javascript",
                "application/javascript",
            )
            imports |= set(re.findall(r'from "\./([a-z]+\.js)"', script.text))
        assert len(seen) >= 8

    async def test_problem_type_pages(self, client: httpx.AsyncClient) -> None:
        page = await client.get("/problems/no-ink")
        assert page.status_code == 200
        assert "No digit in the image" in page.text
        assert (await client.get("/problems/nope")).status_code == 404


class TestLoad:
    async def test_200_concurrent_uploads_all_answered_and_stored(
        self, fresh_client: httpx.AsyncClient, golden: dict[int, bytes]
    ) -> None:
        responses = await asyncio.gather(
            *(upload(fresh_client, golden[n % 10]) for n in range(200))
        )
        assert [r.status_code for r in responses] == [201] * 200
        assert [r.json()["digit"] for r in responses] == [n % 10 for n in range(200)]
        assert await count(fresh_client) == 200

    async def test_full_queue_answers_503_at_once(
        self, model_root: Path, tmp_path: Path, golden: dict[int, bytes]
    ) -> None:
        async with (
            running_app(
                model_root,
                sqlite_path=tmp_path / "busy.sqlite3",
                queue_size=1,
                max_batch=1,
                max_delay_ms=0,
            ) as app,
            asgi_client(app) as busy,
        ):
            responses = await asyncio.gather(*(upload(busy, golden[1]) for _ in range(60)))
            statuses = [r.status_code for r in responses]
            assert set(statuses) <= {201, 503}
            refused = [r for r in responses if r.status_code == 503]
            assert refused, statuses
            assert refused[0].headers["retry-after"] == "1"
            assert_problem(refused[0], 503, "overloaded")
            assert await count(busy) == statuses.count(201)


class TestStartup:
    async def test_missing_model_stops_startup_with_a_clear_message(self, tmp_path: Path) -> None:
        from mnist_core.errors import ArtifactError

        with pytest.raises(ArtifactError, match=r"no model artifact at .*mnist-train train"):
            async with running_app(tmp_path / "nowhere", sqlite_path=tmp_path / "x.sqlite3"):
                pass

    async def test_incompatible_model_stops_startup(self, model_root: Path, tmp_path: Path) -> None:
        from mnist_core.errors import ArtifactError

        artifact = tmp_path / "artifact"
        source = model_root / (model_root / "LATEST").read_text().strip()
        artifact.mkdir()
        (artifact / "model.keras").write_bytes((source / "model.keras").read_bytes())
        meta = json.loads((source / "metadata.json").read_text())
        meta["format"] = "mnist-artifact/99"
        (artifact / "metadata.json").write_text(json.dumps(meta))
        with pytest.raises(ArtifactError, match="artifact format 'mnist-artifact/99'"):
            async with running_app(artifact, sqlite_path=tmp_path / "x.sqlite3"):
                pass
