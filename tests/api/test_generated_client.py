"""A Python SDK really generated from the served ``/openapi.json`` by openapi-python-client works
against a real server: typed uploads, paging, one prediction, labels and problem details."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow

PACKAGE = "mnist_digit_recognition_client"
GENERATOR = Path(sys.executable).parent / "openapi-python-client"
REQUIRED_MODULES = [
    "api/predictions/create_prediction.py",
    "api/predictions/create_predictions_batch.py",
    "api/predictions/list_predictions.py",
    "api/predictions/get_prediction.py",
    "api/predictions/get_prediction_image.py",
    "api/predictions/set_prediction_label.py",
    "api/predictions/delete_prediction.py",
    "api/legacy/upload_legacy.py",
    "api/operations/get_health.py",
    "api/operations/get_readiness.py",
    "models/prediction.py",
    "models/prediction_page.py",
    "models/prediction_upload.py",
    "models/batch_prediction_upload.py",
    "models/legacy_upload.py",
    "models/label_update.py",
    "models/problem.py",
]
# openapi-python-client omits responses whose media type it cannot parse (anything but JSON,
# text and application/octet-stream): the two image downloads. Their bytes stay reachable through
# ``sync_detailed(...).content`` of a client that does not raise on unexpected statuses, and the
# generator's ``content_type_overrides`` maps them to ``File``. Any other warning is a defect.
TOLERATED_WARNING = re.compile(
    r"GET /v1/predictions/\{prediction_id\}/(image|input\.png) within predictions\.\s+"
    r"Cannot parse response for status code .*\(Unsupported content_type image/[a-z*]+\), "
    r"response will be omitted from generated client"
)
IMAGE_OVERRIDES = {"image/*": "application/octet-stream", "image/png": "application/octet-stream"}
MAX_PAGES = 10_000


@dataclass(frozen=True)
class Generated:
    package_dir: Path
    returncode: int
    output: str


@dataclass(frozen=True)
class Upload:
    id: uuid.UUID
    digit: int
    png: bytes


def generate(
    spec: dict[str, Any], out_dir: Path, config: dict[str, Any] | None = None
) -> Generated:
    """Runs the real generator; with ``--meta none`` the package is written right in ``out_dir``."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    spec_path = out_dir.parent / f"{out_dir.name}.openapi.json"
    spec_path.write_text(json.dumps(spec, indent=2))
    command = [str(GENERATOR), "generate", "--path", str(spec_path)]
    command += ["--output-path", str(out_dir), "--meta", "none"]
    if config is not None:
        config_path = out_dir.parent / f"{out_dir.name}.config.json"
        config_path.write_text(json.dumps(config))
        command += ["--config", str(config_path)]
    # The generator formats its output with ruff when ruff is on PATH.
    env = {**os.environ, "PATH": f"{GENERATOR.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=300, check=False
    )
    return Generated(out_dir, result.returncode, result.stdout + result.stderr)


@contextmanager
def imported(package_dir: Path) -> Iterator[ModuleType]:
    """The generated package, imported from its folder and forgotten afterwards."""
    name = package_dir.name
    root = str(package_dir.parent)
    sys.path.insert(0, root)
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(root)
        for module in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
            del sys.modules[module]


@pytest.fixture(scope="module")
def spec(live_server: Any) -> dict[str, Any]:
    response = httpx.get(f"{live_server.url}/openapi.json", timeout=10)
    assert response.status_code == 200, response.text
    spec: dict[str, Any] = response.json()
    return spec


@pytest.fixture(scope="module")
def generated(spec: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Generated:
    """The SDK as anyone gets it: the real generator, default options, the served document."""
    return generate(spec, tmp_path_factory.mktemp("sdk") / PACKAGE)


@pytest.fixture(scope="module")
def sdk(generated: Generated) -> Iterator[ModuleType]:
    if generated.returncode != 0 or not (generated.package_dir / "__init__.py").exists():
        pytest.fail(f"generation failed:\n{generated.output}")
    with imported(generated.package_dir) as package:
        for name in [
            "api.predictions.create_prediction",
            "api.predictions.create_predictions_batch",
            "api.predictions.list_predictions",
            "api.predictions.get_prediction",
            "api.predictions.get_prediction_image",
            "api.predictions.set_prediction_label",
            "api.predictions.delete_prediction",
            "api.legacy.upload_legacy",
            "api.operations.get_health",
            "api.operations.get_readiness",
            "models",
            "types",
        ]:
            importlib.import_module(f"{PACKAGE}.{name}")
        yield package


@pytest.fixture(scope="module")
def api(sdk: ModuleType, live_server: Any) -> Iterator[Any]:
    """The generated ``Client``; undocumented statuses raise instead of parsing as None."""
    with sdk.Client(base_url=live_server.url, raise_on_unexpected_status=True, timeout=30) as api:
        yield api


def upload_raw(url: str, png: bytes, name: str) -> uuid.UUID:
    """An upload that does not go through the SDK, so reading tests stand on their own."""
    response = httpx.post(
        f"{url}/v1/predictions", files={"file": (name, png, "image/png")}, timeout=30
    )
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


@pytest.fixture(scope="module")
def uploads(live_server: Any, golden: dict[int, bytes]) -> list[Upload]:
    """Five predictions, oldest first, in a store other tests share."""
    return [
        Upload(upload_raw(live_server.url, golden[d], f"digit-{d}.png"), d, golden[d])
        for d in (2, 4, 6, 8, 0)
    ]


def image_file(sdk: ModuleType, png: bytes, name: str) -> Any:
    return sdk.types.File(payload=BytesIO(png), file_name=name, mime_type="image/png")


# --- generation ------------------------------------------------------------------------------


def test_generator_accepts_the_spec(generated: Generated) -> None:
    assert generated.returncode == 0, generated.output
    missing = [p for p in REQUIRED_MODULES if not (generated.package_dir / p).exists()]
    assert missing == [], generated.output
    models = sorted(p.name for p in (generated.package_dir / "models").glob("*.py"))
    assert [m for m in models if m.startswith("body_")] == [], models
    assert [m for m in models if "validation_error" in m] == [], models
    # Unnamed (inline) schemas get names like ``create_prediction_response_201``.
    assert [m for m in models if re.search(r"_response_\d{3}|_body\b", m)] == [], models


def test_generator_reports_no_spec_problems(generated: Generated) -> None:
    assert generated.returncode == 0, generated.output
    warnings = generated.output.split("WARNING parsing ")[1:]
    assert [w for w in warnings if not TOLERATED_WARNING.match(w)] == [], generated.output
    assert len(warnings) <= 2, generated.output
    assert "Unable to" not in generated.output, generated.output
    assert "Error" not in generated.output, generated.output


def test_upload_models_take_files(sdk: ModuleType) -> None:
    """The multipart models send a file part, not ``str(file)`` as a text field."""
    from_types = sdk.types.File
    single = image_file(sdk, b"\x89PNG...", "seven.png")
    for model in (sdk.models.PredictionUpload, sdk.models.LegacyUpload):
        parts = model(file=single).to_multipart()
        assert parts[0][0] == "file"
        assert parts[0][1][:1] == ("seven.png",), f"{model.__name__}.file is not a File: {parts}"
        assert parts[0][1][2] == "image/png"
    batch = sdk.models.BatchPredictionUpload(files=[single, from_types(payload=BytesIO(b"x"))])
    parts = batch.to_multipart()
    assert [name for name, _ in parts] == ["files", "files"]
    assert parts[0][1][0] == "seven.png", f"BatchPredictionUpload.files: {parts}"


# --- uploads ---------------------------------------------------------------------------------


def test_create_prediction(sdk: ModuleType, api: Any, golden: dict[int, bytes]) -> None:
    from mnist_digit_recognition_client.api.predictions import create_prediction, get_prediction
    from mnist_digit_recognition_client.models import PredictionUpload

    prediction_cls = sdk.models.Prediction
    for digit, name in [(7, "seven.png"), (3, "three.png"), (1, "one.png")]:
        body = PredictionUpload(file=image_file(sdk, golden[digit], name))
        response = create_prediction.sync_detailed(client=api, body=body)
        assert response.status_code == 201, response.content
        prediction = response.parsed
        assert isinstance(prediction, prediction_cls), response.content
        assert prediction.digit == digit
        assert isinstance(prediction.id, uuid.UUID)
        assert response.headers["location"] == f"/v1/predictions/{prediction.id}"
        assert len(prediction.probabilities) == 10
        assert prediction.confidence == max(prediction.probabilities)
        assert prediction.image.sha256 == hashlib.sha256(golden[digit]).hexdigest()
        assert prediction.image.content_type == "image/png"
        again = get_prediction.sync(prediction_id=prediction.id, client=api)
        assert isinstance(again, prediction_cls)
        assert again.id == prediction.id


def test_create_predictions_batch(sdk: ModuleType, api: Any, golden: dict[int, bytes]) -> None:
    from mnist_digit_recognition_client.api.predictions import create_predictions_batch
    from mnist_digit_recognition_client.models import BatchPredictionUpload, BatchResult

    files = [image_file(sdk, golden[5], "five.png"), image_file(sdk, b"not an image", "x.png")]
    result = create_predictions_batch.sync(client=api, body=BatchPredictionUpload(files=files))
    assert isinstance(result, BatchResult), result
    good, bad = result.items
    assert good.status == 201
    assert isinstance(good.prediction, sdk.models.Prediction)
    assert good.prediction.digit == 5
    assert bad.status == 422
    assert isinstance(bad.problem, sdk.models.Problem)
    assert bad.problem.type_ == "/problems/invalid-image"


def test_legacy_upload(sdk: ModuleType, api: Any, golden: dict[int, bytes]) -> None:
    from mnist_digit_recognition_client.api.legacy import upload_legacy
    from mnist_digit_recognition_client.models import LegacyUpload

    body = LegacyUpload(file=image_file(sdk, golden[9], "nine.png"))
    response = upload_legacy.sync_detailed(client=api, body=body)
    assert response.status_code == 200, response.content
    assert isinstance(response.parsed, sdk.models.Prediction), response.content
    assert response.parsed.digit == 9


def test_upload_problem_is_parsed(sdk: ModuleType, api: Any) -> None:
    from mnist_digit_recognition_client.api.predictions import create_prediction
    from mnist_digit_recognition_client.models import PredictionUpload

    body = PredictionUpload(file=image_file(sdk, b"", "empty.png"))
    response = create_prediction.sync_detailed(client=api, body=body)
    assert response.status_code == 422
    assert isinstance(response.parsed, sdk.models.Problem), response.content
    assert response.parsed.type_ == "/problems/empty-file", response.content


# --- reading ---------------------------------------------------------------------------------


def test_paging_through_history(sdk: ModuleType, api: Any, uploads: list[Upload]) -> None:
    from mnist_digit_recognition_client.api.predictions import list_predictions
    from mnist_digit_recognition_client.models import PredictionPage

    seen: list[uuid.UUID] = []
    created = []
    cursor: str | None = None
    pages = 0
    while True:
        page = list_predictions.sync(client=api, limit=2, cursor=cursor)
        assert isinstance(page, PredictionPage), page
        pages += 1
        assert len(page.items) <= 2
        assert all(isinstance(item, sdk.models.Prediction) for item in page.items)
        seen += [item.id for item in page.items]
        created += [item.created_at for item in page.items]
        if page.next_cursor is None:
            break
        assert isinstance(page.next_cursor, str)
        assert pages < MAX_PAGES, "paging does not end"
        cursor = page.next_cursor
    assert pages >= 3
    assert len(seen) == len(set(seen)), "a prediction appeared on two pages"
    assert created == sorted(created, reverse=True), "not newest first"
    ours = [upload.id for upload in uploads]
    assert [seen.count(i) for i in ours] == [1] * len(ours)
    assert [i for i in seen if i in ours] == ours[::-1], "newest first"


def test_filtering_history(sdk: ModuleType, api: Any, uploads: list[Upload]) -> None:
    from mnist_digit_recognition_client.api.predictions import list_predictions

    page = list_predictions.sync(client=api, limit=100, digit=uploads[0].digit)
    assert isinstance(page, sdk.models.PredictionPage), page
    assert {item.digit for item in page.items} == {uploads[0].digit}
    assert uploads[0].id in {item.id for item in page.items}


def test_get_prediction(sdk: ModuleType, api: Any, uploads: list[Upload]) -> None:
    from mnist_digit_recognition_client.api.predictions import get_prediction

    upload = uploads[1]
    prediction = get_prediction.sync(prediction_id=upload.id, client=api)
    assert isinstance(prediction, sdk.models.Prediction), prediction
    assert prediction.id == upload.id
    assert prediction.digit == upload.digit
    assert prediction.image.sha256 == hashlib.sha256(upload.png).hexdigest()
    assert prediction.label is None
    assert prediction.labeled_at is None


def test_download_image(sdk: ModuleType, live_server: Any, uploads: list[Upload]) -> None:
    """The default SDK has no parsed 200 for the image (see TOLERATED_WARNING): a client that
    raises on unexpected statuses would raise here; one with the defaults gives the bytes."""
    from mnist_digit_recognition_client.api.predictions import get_prediction_image

    upload = uploads[1]
    with sdk.Client(base_url=live_server.url, timeout=30) as lenient:
        response = get_prediction_image.sync_detailed(prediction_id=upload.id, client=lenient)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content == upload.png


def test_image_downloads_with_content_type_overrides(
    spec: dict[str, Any], live_server: Any, uploads: list[Upload], tmp_path: Path
) -> None:
    """With the generator's documented ``content_type_overrides`` the image downloads are typed."""
    result = generate(
        spec, tmp_path / "mnist_bytes_client", {"content_type_overrides": IMAGE_OVERRIDES}
    )
    assert result.returncode == 0, result.output
    assert "WARNING" not in result.output, result.output
    with imported(result.package_dir) as package:
        image = importlib.import_module(f"{package.__name__}.api.predictions.get_prediction_image")
        model_input = importlib.import_module(
            f"{package.__name__}.api.predictions.get_prediction_input"
        )
        with package.Client(base_url=live_server.url, raise_on_unexpected_status=True) as strict:
            original = image.sync(prediction_id=uploads[1].id, client=strict)
            seen = model_input.sync(prediction_id=uploads[1].id, client=strict)
        file_type = importlib.import_module(f"{package.__name__}.types").File
        assert isinstance(original, file_type), original
        assert original.payload.read() == uploads[1].png
        assert isinstance(seen, file_type), seen
        assert seen.payload.read().startswith(b"\x89PNG")


def test_set_prediction_label(sdk: ModuleType, api: Any, uploads: list[Upload]) -> None:
    from mnist_digit_recognition_client.api.predictions import get_prediction, set_prediction_label
    from mnist_digit_recognition_client.models import LabelUpdate

    upload = uploads[2]
    labeled = set_prediction_label.sync(
        prediction_id=upload.id, client=api, body=LabelUpdate(label=3)
    )
    assert isinstance(labeled, sdk.models.Prediction), labeled
    assert labeled.id == upload.id
    assert labeled.label == 3
    assert labeled.labeled_at is not None
    assert labeled.labeled_at >= labeled.created_at
    again = get_prediction.sync(prediction_id=upload.id, client=api)
    assert isinstance(again, sdk.models.Prediction)
    assert again.label == 3
    assert again.labeled_at == labeled.labeled_at


def test_delete_prediction(
    sdk: ModuleType, api: Any, live_server: Any, golden: dict[int, bytes]
) -> None:
    from mnist_digit_recognition_client.api.predictions import delete_prediction, get_prediction

    prediction_id = upload_raw(live_server.url, golden[4], "four.png")
    response = delete_prediction.sync_detailed(prediction_id=prediction_id, client=api)
    assert response.status_code == 204
    gone = get_prediction.sync_detailed(prediction_id=prediction_id, client=api)
    assert gone.status_code == 404
    assert isinstance(gone.parsed, sdk.models.Problem)


# --- errors ----------------------------------------------------------------------------------


def test_unknown_prediction_is_a_problem(sdk: ModuleType, api: Any) -> None:
    from mnist_digit_recognition_client.api.predictions import get_prediction

    unknown = uuid.uuid1()
    response = get_prediction.sync_detailed(prediction_id=unknown, client=api)
    assert response.status_code == 404
    problem = response.parsed
    assert isinstance(problem, sdk.models.Problem), response.content
    assert problem.status == 404
    assert problem.type_ == "/problems/prediction-not-found"
    assert problem.title == "Prediction not found"
    assert str(unknown) in problem.detail
    assert problem.instance == f"/v1/predictions/{unknown}"


def test_invalid_label_is_a_validation_problem(
    sdk: ModuleType, api: Any, uploads: list[Upload]
) -> None:
    from mnist_digit_recognition_client.api.predictions import set_prediction_label
    from mnist_digit_recognition_client.models import LabelUpdate

    response = set_prediction_label.sync_detailed(
        prediction_id=uploads[3].id, client=api, body=LabelUpdate(label=12)
    )
    assert response.status_code == 422
    problem = response.parsed
    assert isinstance(problem, sdk.models.Problem), response.content
    assert problem.type_ == "/problems/validation-error"
    assert isinstance(problem.errors, list)
    assert problem.errors
    assert isinstance(problem.errors[0], sdk.models.ValidationIssue)
    assert problem.errors[0].loc == ["body", "label"]


def test_bad_cursor_is_a_problem(sdk: ModuleType, api: Any) -> None:
    from mnist_digit_recognition_client.api.predictions import list_predictions

    response = list_predictions.sync_detailed(client=api, cursor="not-a-cursor")
    assert response.status_code == 400
    assert isinstance(response.parsed, sdk.models.Problem), response.content
    assert response.parsed.type_ == "/problems/invalid-cursor"


# --- operations ------------------------------------------------------------------------------


def test_health_and_readiness(sdk: ModuleType, api: Any) -> None:
    from mnist_digit_recognition_client.api.operations import get_health, get_readiness

    health = get_health.sync(client=api)
    assert isinstance(health, sdk.models.Health)
    assert health.status == "ok"
    ready = get_readiness.sync(client=api)
    assert isinstance(ready, sdk.models.Readiness)
    assert ready.model_loaded is True
    assert ready.store_reachable is True
    assert ready.store == "sqlite"


# --- with API keys ---------------------------------------------------------------------------

SECURED_PACKAGE = "mnist_secured_client"


@pytest.fixture(scope="module")
def secured_sdk(secured_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The SDK generated from a server that needs keys: its ``AuthenticatedClient`` sends one."""
    spec = httpx.get(f"{secured_server.url}/openapi.json", timeout=10).json()
    made = generate(spec, tmp_path_factory.mktemp("secured-sdk") / SECURED_PACKAGE)
    assert made.returncode == 0, made.output
    with imported(made.package_dir) as package:
        for name in (
            "api.predictions.create_prediction",
            "api.predictions.list_predictions",
            "api.predictions.get_prediction",
            "api.keys.get_current_key",
            "models",
        ):
            importlib.import_module(f"{SECURED_PACKAGE}.{name}")
        yield package


def test_authenticated_client_sends_the_key(
    secured_sdk: Any, secured_server: Any, golden: dict[int, bytes]
) -> None:
    api = secured_sdk.api
    secret = secured_server.key("python sdk")
    other = secured_server.key("someone else")
    with (
        secured_sdk.AuthenticatedClient(base_url=secured_server.url, token=secret) as mine,
        secured_sdk.AuthenticatedClient(base_url=secured_server.url, token=other) as theirs,
        secured_sdk.Client(base_url=secured_server.url) as nobody,
    ):
        me = api.keys.get_current_key.sync(client=mine)
        assert isinstance(me, secured_sdk.models.KeyInfo)
        assert (me.name, me.id) == ("python sdk", secret.split("_")[1])
        body = secured_sdk.models.PredictionUpload(file=image_file(secured_sdk, golden[6], "6.png"))
        created = api.predictions.create_prediction.sync_detailed(client=mine, body=body)
        assert created.status_code == 201, created.content
        prediction = created.parsed
        assert prediction.digit == 6
        assert prediction.owner == me.id
        page = api.predictions.list_predictions.sync(client=mine)
        assert [item.id for item in page.items] == [prediction.id]
        # Another key: the prediction does not exist for it.
        hidden = api.predictions.get_prediction.sync_detailed(
            prediction_id=prediction.id, client=theirs
        )
        assert hidden.status_code == 404
        assert isinstance(hidden.parsed, secured_sdk.models.Problem)
        # No key at all: a typed 401 problem.
        refused = api.predictions.list_predictions.sync_detailed(client=nobody)
        assert refused.status_code == 401
        assert isinstance(refused.parsed, secured_sdk.models.Problem)
        assert refused.parsed.type_ == "/problems/unauthorized"
        assert refused.headers["www-authenticate"].startswith("Bearer")
