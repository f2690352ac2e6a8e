"""The OpenAPI document is made for generated SDKs: stable snake_case operation ids, named
schemas (no ``Body_...``), problem details for every error, examples, and errors the app really
returns match the documented ``Problem`` schema."""

from __future__ import annotations

import io
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from mnist_api.app import create_app
from mnist_api.kernel.settings import load_settings

PROBLEM_JSON = "application/problem+json"
PROBLEM_REF = "#/components/schemas/Problem"
SCHEMA_PREFIX = "#/components/schemas/"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")

# (method, path) -> operationId. SDK method names derive from these: changing one breaks clients.
EXPECTED_OPERATIONS = {
    ("post", "/v1/predictions"): "create_prediction",
    ("post", "/v1/predictions/batch"): "create_predictions_batch",
    ("get", "/v1/predictions"): "list_predictions",
    ("get", "/v1/predictions/{prediction_id}"): "get_prediction",
    ("get", "/v1/predictions/{prediction_id}/image"): "get_prediction_image",
    ("get", "/v1/predictions/{prediction_id}/input.png"): "get_prediction_input",
    ("put", "/v1/predictions/{prediction_id}/label"): "set_prediction_label",
    ("put", "/v1/predictions/{prediction_id}/not-a-digit"): "set_prediction_not_a_digit",
    ("delete", "/v1/predictions/{prediction_id}"): "delete_prediction",
    ("get", "/v1/review"): "list_review",
    ("post", "/upload"): "upload_legacy",
    ("get", "/v1/keys/me"): "get_current_key",
    ("get", "/v1/models"): "get_models",
    ("post", "/v1/models/reload"): "reload_model",
    ("get", "/healthz"): "get_health",
    ("get", "/readyz"): "get_readiness",
    ("get", "/metrics"): "get_metrics",
}
PREDICTION_OPERATIONS = {
    "create_prediction",
    "create_predictions_batch",
    "list_predictions",
    "get_prediction",
    "get_prediction_image",
    "get_prediction_input",
    "set_prediction_label",
    "set_prediction_not_a_digit",
    "delete_prediction",
    "list_review",
    "upload_legacy",
}
MULTIPART_BODIES = {
    "create_prediction": "PredictionUpload",
    "create_predictions_batch": "BatchPredictionUpload",
    "upload_legacy": "LegacyUpload",
}


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The document as the app builds it (authentication required, the default); building it
    needs neither the model nor the store."""
    tmp = tmp_path_factory.mktemp("openapi")
    settings = load_settings(model_path=tmp / "no-model", sqlite_path=tmp / "x.sqlite3")
    return create_app(settings).openapi()


@pytest.fixture(scope="module")
def open_spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The document of a service with authentication off."""
    tmp = tmp_path_factory.mktemp("openapi")
    settings = load_settings(model_path=tmp / "m", sqlite_path=tmp / "x.sqlite3", auth="off")
    return create_app(settings).openapi()


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


def operation_by_id(spec: dict[str, Any], operation_id: str) -> dict[str, Any]:
    found = [op for _, _, op in operations(spec) if op.get("operationId") == operation_id]
    assert len(found) == 1, operation_id
    return found[0]


def is_json(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


def walk(node: Any) -> list[Any]:
    """Every dict and list nested in ``node``, ``node`` included."""
    found = [node]
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
    for child in children:
        found.extend(walk(child))
    return found


# --- a small JSON Schema validator: the subset pydantic emits for these models ----------------

JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def schema_errors(
    value: Any, schema: dict[str, Any], spec: dict[str, Any], where: str = "$"
) -> list[str]:
    if "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith(SCHEMA_PREFIX), ref
        return schema_errors(value, spec["components"]["schemas"][ref[len(SCHEMA_PREFIX) :]], spec)
    if "anyOf" in schema:
        branches = [schema_errors(value, branch, spec, where) for branch in schema["anyOf"]]
        return [] if any(not b for b in branches) else [f"{where}: matches no anyOf branch"]
    errors: list[str] = []
    expected = schema.get("type")
    if expected is not None:
        kinds = JSON_TYPES[expected]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            return [f"{where}: {value!r} is not of type {expected}"]
    if "const" in schema and value != schema["const"]:
        errors.append(f"{where}: {value!r} != {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} not in {schema['enum']!r}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{where}: {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{where}: {value} > {schema['maximum']}")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{where}: {value!r} does not match {schema['pattern']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{where}: longer than {schema['maxLength']}")
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append(f"{where}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{where}: more than {schema['maxItems']} items")
        for index, item in enumerate(value):
            errors += schema_errors(item, schema.get("items", {}), spec, f"{where}[{index}]")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        errors += [
            f"{where}: lacks {key!r}" for key in schema.get("required", ()) if key not in value
        ]
        for key, item in value.items():
            if key in properties:
                errors += schema_errors(item, properties[key], spec, f"{where}.{key}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{where}: unexpected property {key!r}")
    return errors


def test_schema_validator_catches_bad_problems(spec: dict[str, Any]) -> None:
    problem = {"$ref": PROBLEM_REF}
    good = {"type": "/problems/x", "title": "X", "status": 404, "detail": "d", "instance": None}
    assert schema_errors(good, problem, spec) == []
    assert schema_errors({**good, "status": 200}, problem, spec)
    assert schema_errors({**good, "status": "404"}, problem, spec)
    assert schema_errors({k: v for k, v in good.items() if k != "detail"}, problem, spec)
    assert schema_errors(
        {**good, "errors": [{"loc": "body", "msg": "m", "type": "t"}]}, problem, spec
    )


# --- operations ------------------------------------------------------------------------------


def test_operation_ids_are_the_stable_snake_case_set(spec: dict[str, Any]) -> None:
    found = {(method, path): op.get("operationId") for method, path, op in operations(spec)}
    assert found == EXPECTED_OPERATIONS
    ids = [op_id for op_id in found.values() if op_id is not None]
    assert len(ids) == len(set(ids)), f"duplicate operationIds: {sorted(ids)}"
    assert [i for i in ids if not SNAKE_CASE.match(i)] == []


def test_every_operation_has_a_declared_tag_and_a_summary(spec: dict[str, Any]) -> None:
    declared = {tag["name"] for tag in spec.get("tags", [])}
    for method, path, operation in operations(spec):
        where = f"{method.upper()} {path}"
        tags = operation.get("tags", [])
        assert tags, f"{where} has no tag"
        assert set(tags) <= declared, f"{where}: tags {tags} not declared in {declared}"
        assert operation.get("summary", "").strip(), f"{where} has no summary"


def test_prediction_errors_are_problem_details(spec: dict[str, Any]) -> None:
    for operation_id in sorted(PREDICTION_OPERATIONS):
        responses = operation_by_id(spec, operation_id)["responses"]
        errors = {code: answer for code, answer in responses.items() if code[0] in "45"}
        assert errors, f"{operation_id} documents no error response"
        for code, answer in errors.items():
            assert answer.get("content") == {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}}, (
                f"{operation_id} {code}: {answer}"
            )


def test_uploads_document_their_failures(spec: dict[str, Any]) -> None:
    for operation_id in MULTIPART_BODIES:
        codes = set(operation_by_id(spec, operation_id)["responses"])
        assert {"413", "422", "503"} <= codes, f"{operation_id}: {sorted(codes)}"


def test_problem_media_type_only_carries_problems(spec: dict[str, Any]) -> None:
    """``application/problem+json`` means RFC 9457 problem details: a response documented with it
    must use the Problem schema (the app writes other bodies, like Readiness, as JSON)."""
    wrong = [
        f"{method.upper()} {path} {code}: {answer['content'][PROBLEM_JSON]}"
        for method, path, operation in operations(spec)
        for code, answer in operation.get("responses", {}).items()
        if PROBLEM_JSON in answer.get("content", {})
        and answer["content"][PROBLEM_JSON].get("schema") != {"$ref": PROBLEM_REF}
    ]
    assert wrong == [], "non-Problem schemas documented as application/problem+json"


def test_legacy_upload_is_deprecated_and_nothing_else(spec: dict[str, Any]) -> None:
    deprecated = {
        op["operationId"] for _, _, op in operations(spec) if op.get("deprecated") is True
    }
    assert deprecated == {"upload_legacy"}
    assert spec["paths"]["/upload"]["post"]["deprecated"] is True


# --- schemas ---------------------------------------------------------------------------------


def test_component_schemas_have_chosen_names(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    assert [name for name in schemas if name.startswith("Body_")] == []
    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas
    assert {"PredictionUpload", "BatchPredictionUpload", "LegacyUpload"} <= set(schemas)
    for name, schema in schemas.items():
        assert schema.get("title", name) == name, f"{name} is titled {schema.get('title')!r}"


def test_every_ref_resolves(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    refs = {node["$ref"] for node in walk(spec) if isinstance(node, dict) and "$ref" in node}
    assert refs, "no $ref at all"
    dangling = sorted(
        ref
        for ref in refs
        if not ref.startswith(SCHEMA_PREFIX) or ref[len(SCHEMA_PREFIX) :] not in schemas
    )
    assert dangling == []
    unused = sorted(set(schemas) - {ref[len(SCHEMA_PREFIX) :] for ref in refs})
    assert unused == [], "component schemas no operation uses"


def test_bodies_are_named_schemas(spec: dict[str, Any]) -> None:
    """Request bodies and 2xx JSON bodies are ``$ref`` to components: generated SDKs get named
    classes, not ``CreatePredictionResponse201``-style inline ones."""
    inline = []
    for method, path, operation in operations(spec):
        where = f"{method.upper()} {path}"
        for media_type, media in operation.get("requestBody", {}).get("content", {}).items():
            if set(media.get("schema", {})) != {"$ref"}:
                inline.append(f"{where} request {media_type}: {media.get('schema')}")
        for code, answer in operation.get("responses", {}).items():
            for media_type, media in answer.get("content", {}).items():
                named = set(media.get("schema", {})) == {"$ref"}
                if code.startswith("2") and is_json(media_type) and not named:
                    inline.append(f"{where} {code} {media_type}: {media.get('schema')}")
    assert inline == []


def test_multipart_bodies_are_the_upload_schemas(spec: dict[str, Any]) -> None:
    for operation_id, name in MULTIPART_BODIES.items():
        body = operation_by_id(spec, operation_id)["requestBody"]
        assert body.get("required") is True, operation_id
        assert body["content"] == {
            "multipart/form-data": {"schema": {"$ref": SCHEMA_PREFIX + name}}
        }


@pytest.mark.parametrize(
    ("schema_name", "field"),
    [("PredictionUpload", "file"), ("LegacyUpload", "file"), ("BatchPredictionUpload", "files")],
)
def test_upload_fields_are_binary(spec: dict[str, Any], schema_name: str, field: str) -> None:
    """Generators (openapi-python-client, openapi-generator) make a file parameter only of
    ``type: string, format: binary``; FastAPI's OpenAPI 3.1 output gives just
    ``contentMediaType: application/octet-stream``, which they type as a plain ``str``."""
    schema = spec["components"]["schemas"][schema_name]
    assert schema["required"] == [field]
    prop = schema["properties"][field]
    if field == "files":
        assert prop["type"] == "array"
        prop = prop["items"]
    assert prop.get("type") == "string"
    assert prop.get("format") == "binary", f"{schema_name}.{field}: {prop}"


@pytest.mark.parametrize("name", ["Prediction", "PredictionPage", "Problem", "LabelUpdate"])
def test_schemas_carry_valid_examples(spec: dict[str, Any], name: str) -> None:
    schema = spec["components"]["schemas"][name]
    examples = schema.get("examples")
    assert isinstance(examples, list), f"{name} has no examples"
    assert examples, f"{name} has no examples"
    for example in examples:
        assert schema_errors(example, schema, spec) == [], example


# --- the app serves the documents ------------------------------------------------------------


@pytest.mark.asyncio(loop_scope="session")
async def test_served_document_is_the_built_one(
    client: httpx.AsyncClient, open_spec: dict[str, Any]
) -> None:
    response = await client.get("/openapi.json")  # the shared app runs with authentication off
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    served = response.json()
    assert served["openapi"].startswith("3.")
    assert served["info"]["title"] == "MNIST digit recognition"
    assert served["paths"] == open_spec["paths"]
    assert served["components"] == open_spec["components"]


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize(("path", "marker"), [("/docs", "swagger-ui"), ("/redoc", "redoc")])
async def test_documentation_pages(client: httpx.AsyncClient, path: str, marker: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text.lower()
    assert marker in html
    assert "<script>" not in html  # nothing inline: the Content-Security-Policy allows none
    if path == "/docs":
        start = await client.get("/static/docs/swagger-init.js")
        assert '"/openapi.json"' in start.text
    else:
        assert "/openapi.json" in html


# --- real errors match the documented Problem --------------------------------------------------


def png(color: int, size: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (size, size), color).save(buffer, format="PNG")
    return buffer.getvalue()


def ppm() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (255, 255, 255)).save(buffer, format="PPM")
    return buffer.getvalue()


UNKNOWN_ID = str(uuid.UUID(int=0x1234))
BAD_REQUESTS: list[tuple[str, str, str, dict[str, Any], int, str]] = [
    # (id, operation, method, path, httpx kwargs, status, problem type)
    ("no-file", "create_prediction", "POST", "/v1/predictions", {}, 422, "validation-error"),
    (
        "wrong-field",
        "create_prediction",
        "POST",
        "/v1/predictions",
        {"files": {"image": ("a.png", png(0), "image/png")}},
        422,
        "validation-error",
    ),
    (
        "empty-file",
        "create_prediction",
        "POST",
        "/v1/predictions",
        {"files": {"file": ("a.png", b"", "image/png")}},
        422,
        "empty-file",
    ),
    (
        "not-an-image",
        "create_prediction",
        "POST",
        "/v1/predictions",
        {"files": {"file": ("a.png", b"hello, world" * 10, "image/png")}},
        422,
        "invalid-image",
    ),
    (
        "blank-image",
        "create_prediction",
        "POST",
        "/v1/predictions",
        {"files": {"file": ("a.png", png(255), "image/png")}},
        422,
        "no-ink",
    ),
    (
        "ppm-image",
        "create_prediction",
        "POST",
        "/v1/predictions",
        {"files": {"file": ("a.ppm", ppm(), "image/x-portable-pixmap")}},
        415,
        "unsupported-image-type",
    ),
    ("legacy-no-file", "upload_legacy", "POST", "/upload", {}, 422, "validation-error"),
    ("batch-no-files", "create_predictions_batch", "POST", "/v1/predictions/batch", {}, 422, ""),
    ("bad-cursor", "list_predictions", "GET", "/v1/predictions?cursor=%21%21", {}, 400, ""),
    ("bad-limit", "list_predictions", "GET", "/v1/predictions?limit=0", {}, 422, ""),
    ("bad-id", "get_prediction", "GET", "/v1/predictions/not-a-uuid", {}, 404, ""),
    (
        "bad-json",
        "set_prediction_label",
        "PUT",
        f"/v1/predictions/{uuid.uuid1()}/label",
        {"content": b"{", "headers": {"content-type": "application/json"}},
        400,
        "bad-request",
    ),
    (
        "bad-multipart",
        "create_prediction",
        "POST",
        "/v1/predictions",
        {
            "content": b"--x\r\nnot a part",
            "headers": {"content-type": "multipart/form-data; boundary=x"},
        },
        400,
        "bad-request",
    ),
    (
        "unknown-id",
        "get_prediction",
        "GET",
        f"/v1/predictions/{UNKNOWN_ID}",
        {},
        404,
        "prediction-not-found",
    ),
    (
        "unknown-image",
        "get_prediction_image",
        "GET",
        f"/v1/predictions/{UNKNOWN_ID}/image",
        {},
        404,
        "prediction-not-found",
    ),
    (
        "unknown-input",
        "get_prediction_input",
        "GET",
        f"/v1/predictions/{UNKNOWN_ID}/input.png",
        {},
        404,
        "prediction-not-found",
    ),
    (
        "label-out-of-range",
        "set_prediction_label",
        "PUT",
        f"/v1/predictions/{UNKNOWN_ID}/label",
        {"json": {"label": 12}},
        422,
        "validation-error",
    ),
    (
        "label-extra-field",
        "set_prediction_label",
        "PUT",
        f"/v1/predictions/{UNKNOWN_ID}/label",
        {"json": {"label": 1, "digit": 1}},
        422,
        "validation-error",
    ),
    (
        "label-unknown-id",
        "set_prediction_label",
        "PUT",
        f"/v1/predictions/{UNKNOWN_ID}/label",
        {"json": {"label": 1}},
        404,
        "prediction-not-found",
    ),
    (
        "delete-unknown-id",
        "delete_prediction",
        "DELETE",
        f"/v1/predictions/{UNKNOWN_ID}",
        {},
        404,
        "prediction-not-found",
    ),
]


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize(
    ("operation_id", "method", "url", "kwargs", "status", "slug"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_REQUESTS],
)
async def test_real_errors_match_the_problem_schema(
    client: httpx.AsyncClient,
    spec: dict[str, Any],
    operation_id: str,
    method: str,
    url: str,
    kwargs: dict[str, Any],
    status: int,
    slug: str,
) -> None:
    response = await client.request(method, url, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0] == PROBLEM_JSON
    body = response.json()
    documented = operation_by_id(spec, operation_id)["responses"]
    assert str(status) in documented, f"{operation_id} answers {status}, not documented"
    schema = documented[str(status)]["content"][PROBLEM_JSON]["schema"]
    assert schema_errors(body, schema, spec) == [], body
    assert body["status"] == status
    assert body["title"].strip()
    assert body["detail"].strip()
    assert body["type"].startswith("/problems/")
    if slug:
        assert body["type"] == f"/problems/{slug}"
    if body["type"] == "/problems/validation-error":
        assert body["errors"], "a validation problem names the fields that failed"
    # The problem type is a page the app serves.
    page = await client.get(body["type"])
    assert page.status_code == 200, body["type"]


def test_spec_builds_without_the_model(tmp_path: Path) -> None:
    """Building the document is pure: no model load, no store file."""
    settings = load_settings(model_path=tmp_path / "missing", sqlite_path=tmp_path / "x.sqlite3")
    spec = create_app(settings).openapi()
    assert spec["info"]["title"] == "MNIST digit recognition"
    assert not (tmp_path / "x.sqlite3").exists()


# --- what typed SDKs need ----------------------------------------------------------------------


def test_probabilities_are_64_bit_floats(spec: dict[str, Any]) -> None:
    """Without a format, Go generators pick float32 and Java ones BigDecimal."""
    prediction = spec["components"]["schemas"]["Prediction"]["properties"]
    assert prediction["confidence"]["format"] == "double"
    assert prediction["probabilities"]["items"] == {"type": "number", "format": "double"}


def test_the_verdict_is_an_enum_with_its_score_documented(spec: dict[str, Any]) -> None:
    """Generators make an enum type of it; the description tells what each value means."""
    prediction = spec["components"]["schemas"]["Prediction"]
    assert "verdict" in prediction["required"]
    verdict = prediction["properties"]["verdict"]
    assert verdict["enum"] == ["digit", "uncertain", "not_a_digit"]
    for word in ("`digit`", "`uncertain`", "`not_a_digit`", "thresholds"):
        assert word in verdict["description"]
    assert "score behind `verdict`" in prediction["properties"]["confidence"]["description"]


def test_response_schemas_are_open_to_new_fields_and_request_bodies_are_not(
    spec: dict[str, Any],
) -> None:
    """A client generated today must keep reading answers that carry a field added later;
    strict generators (OpenAPI Generator's Java client) refuse unknown fields unless told."""
    schemas = spec["components"]["schemas"]
    answered = {
        "Prediction", "ImageInfo", "PredictionPage", "Problem", "ValidationIssue",
        "BatchItem", "BatchResult", "Health", "Readiness", "KeyInfo", "Models", "ModelInfo",
        "ModelTraining", "ModelCorrections", "ModelCalibration", "ModelReload",
        "VerdictThresholds", "ReviewPage",
    }  # fmt: skip
    assert {name for name, schema in schemas.items() if schema.get("additionalProperties")} == (
        answered
    )
    assert schemas["LabelUpdate"]["additionalProperties"] is False


def test_headers_clients_read_are_declared(spec: dict[str, Any]) -> None:
    created = spec["paths"]["/v1/predictions"]["post"]["responses"]["201"]
    assert created["headers"]["Location"]["schema"]["type"] == "string"
    unavailable = [
        (path, method)
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if "503" in operation.get("responses", {}) and path != "/readyz"
    ]
    assert len(unavailable) >= 9
    for path, method in unavailable:
        answer = spec["paths"][path][method]["responses"]["503"]
        assert answer["headers"]["Retry-After"]["schema"]["type"] == "integer", (path, method)


def test_links_lead_from_an_upload_to_what_can_be_done_with_its_id(spec: dict[str, Any]) -> None:
    links = spec["paths"]["/v1/predictions"]["post"]["responses"]["201"]["links"]
    operations = {link["operationId"] for link in links.values()}
    assert operations == {
        "get_prediction", "get_prediction_image", "get_prediction_input",
        "set_prediction_label", "delete_prediction",
    }  # fmt: skip
    for link in links.values():
        assert link["parameters"] == {"prediction_id": "$response.body#/id"}


def test_built_document_names_the_configured_address(tmp_path: Path) -> None:
    settings = {"model_path": tmp_path, "inference_mode": "off", "store": "none", "auth": "off"}
    default = create_app(load_settings(**settings))
    assert default.openapi()["servers"][0]["url"] == "http://127.0.0.1:8000"
    public = create_app(load_settings(**settings, public_url="https://digits.example.org/"))
    assert public.openapi()["servers"][0]["url"] == "https://digits.example.org"


@pytest.mark.asyncio(loop_scope="session")
async def test_served_document_names_the_address_it_was_read_from(
    client: httpx.AsyncClient,
) -> None:
    """A client generated from /openapi.json calls the server it came from; Swagger UI opened
    on localhost calls localhost."""
    served = (await client.get("/openapi.json")).json()
    assert served["servers"] == [{"url": "http://test", "description": "this service"}]
    other = (await client.get("http://localhost:8123/openapi.json")).json()
    assert other["servers"][0]["url"] == "http://localhost:8123"


# --- security --------------------------------------------------------------------------------

SCOPES = {
    "create_prediction": "predict",
    "create_predictions_batch": "predict",
    "upload_legacy": "predict",
    "list_predictions": "read",
    "get_prediction": "read",
    "get_prediction_image": "read",
    "get_prediction_input": "read",
    "list_review": "read",
    "set_prediction_label": "label",
    "set_prediction_not_a_digit": "label",
    "delete_prediction": "delete",
    "reload_model": "admin",
}


def test_security_schemes_are_declared(spec: dict[str, Any]) -> None:
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["type"] == "http"
    assert schemes["bearerAuth"]["scheme"].lower() == "bearer"
    assert schemes["apiKeyAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": schemes["apiKeyAuth"]["description"],
    }


def test_every_api_operation_needs_a_key_with_its_scope(
    spec: dict[str, Any], open_spec: dict[str, Any]
) -> None:
    for method, path, operation in operations(spec):
        operation_id = operation["operationId"]
        security = operation.get("security")
        if path in ("/healthz", "/readyz", "/metrics"):
            assert security is None, operation_id
            continue
        roles = [SCOPES[operation_id]] if operation_id in SCOPES else []
        assert security == [{"bearerAuth": roles}, {"apiKeyAuth": roles}], operation_id
        for code in ("401", "429"):
            assert code in operation["responses"], (operation_id, code)
        unauthorized = operation["responses"]["401"]["headers"]
        assert "WWW-Authenticate" in unauthorized, operation_id
        limited = operation["responses"]["429"]["headers"]
        assert {"Retry-After", "RateLimit-Remaining"} <= set(limited), operation_id
        if roles:
            assert "403" in operation["responses"], operation_id
        # With authentication off the same operation may be called without a key.
        off = open_spec["paths"][path][method]["security"]
        assert off == [*security, {}], operation_id
