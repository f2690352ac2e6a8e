"""The OpenAPI document, shaped for people and for SDK generators.

FastAPI builds the document from the routes; this module adds what generators need and FastAPI
does not say by itself:

- multipart bodies get names of their own (``PredictionUpload``, ...) instead of ``Body_...``,
  and their file fields ``format: binary``, so generated SDKs send files, not text;
- error answers are ``application/problem+json`` with the ``Problem`` schema, validation errors
  included;
- every schema that appears in a response is open to additions (``additionalProperties: true``),
  so a client generated today keeps reading answers that carry a field added later (strict
  generators, such as OpenAPI Generator's Java client, otherwise refuse unknown fields);
- ``servers`` names where the API is: ``MNIST_API_PUBLIC_URL`` when set, otherwise the address
  the document itself was read from, so a client generated from ``/openapi.json`` calls the
  server it was generated from, and Swagger UI calls the origin it was opened on.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi

DESCRIPTION = """
Recognises handwritten digits. Upload an image of one digit; the service turns it into MNIST's
own format (28x28, white ink on black, centred by mass), runs a convolutional network trained on
MNIST, stores the upload and the prediction, and answers with the digit and its probabilities.

**Authentication.** Send an API key as `Authorization: Bearer KEY` (or `X-API-Key: KEY`).
An administrator creates keys with `mnist-api keys create --name NAME`; each key has scopes
(`predict`, `read`, `label`, `delete`, and `admin`, which includes the others and sees every
owner's predictions) and a rate limit, announced in `RateLimit-*` headers. A key sees only the
predictions it made: another key's prediction is answered 404, as one that does not exist.
Where the service runs with authentication off, no key is needed.

Errors are [RFC 9457](https://www.rfc-editor.org/rfc/rfc9457) problem details
(`application/problem+json`). Answers may gain fields in later versions: clients should ignore
fields they do not know.
"""

TAGS = [
    {"name": "predictions", "description": "Upload digits, browse and correct the history."},
    {"name": "keys", "description": "The API key a request is made with."},
    {"name": "models", "description": "The model serving, and swapping in a new one."},
    {"name": "operations", "description": "Health, readiness and metrics."},
    {"name": "legacy", "description": "The original system's endpoint, kept for old clients."},
]

SCHEMAS = "#/components/schemas/"
PROBLEM_REF = f"{SCHEMAS}Problem"
# Multipart bodies get names of their own instead of FastAPI's generated ``Body_...``.
BODY_SCHEMA_NAMES = {
    "Body_create_prediction": "PredictionUpload",
    "Body_create_predictions_batch": "BatchPredictionUpload",
    "Body_upload_legacy": "LegacyUpload",
}


def _mark_binary(schema: dict[str, Any]) -> None:
    """OpenAPI 3.1 writes an upload as ``contentMediaType``; SDK generators look for
    ``format: binary`` to type it as a file, so say both."""
    for prop in schema.get("properties", {}).values():
        for node in (prop, prop.get("items", {})):
            if node.get("contentMediaType") == "application/octet-stream":
                node["format"] = "binary"


def _refs(node: Any) -> set[str]:
    """The names of the component schemas that ``node`` refers to directly."""
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(SCHEMAS):
            found.add(ref.removeprefix(SCHEMAS))
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found


def _reachable(names: set[str], schemas: dict[str, Any]) -> set[str]:
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name not in seen and name in schemas:
            seen.add(name)
            todo.extend(_refs(schemas[name]))
    return seen


def _shape_security(operation: dict[str, Any], optional: bool) -> None:
    """FastAPI lists both schemes (either one will do) with the operation's scope as the role
    it needs; with authentication off, a request without a key is fine too (``{}``)."""
    security = operation.get("security")
    if not security:
        return
    if optional and {} not in security:
        security.append({})
    roles = sorted(
        {role for requirement in security for roles in requirement.values() for role in roles}
    )
    if roles:
        need = ", ".join(f"`{role}`" for role in roles)
        note = f"Needs an API key with the {need} scope (or `admin`)."
    else:
        note = "Needs an API key (any scope)."
    if optional:
        note += " Without a key where authentication is off."
    text = operation.get("description", "")
    operation["description"] = f"{text}\n\n{note}".strip()


def _shape(spec: dict[str, Any], optional_auth: bool) -> None:
    schemas = spec.get("components", {}).get("schemas", {})
    for old, new in BODY_SCHEMA_NAMES.items():
        if old in schemas:
            schemas[new] = schemas.pop(old)
            schemas[new]["title"] = new
            _mark_binary(schemas[new])
    answered: set[str] = set()
    for path in spec["paths"].values():
        for operation in path.values():
            _shape_security(operation, optional_auth)
            for code, answer in operation.get("responses", {}).items():
                content = answer.get("content", {})
                if code == "422":  # validation errors are problem details too
                    content.pop("application/json", None)
                    content["application/problem+json"] = {"schema": {"$ref": PROBLEM_REF}}
                elif (
                    content.get("application/json", {}).get("schema", {}).get("$ref") == PROBLEM_REF
                ):
                    content["application/problem+json"] = content.pop("application/json")
                answered |= _refs(content)
            body = operation.get("requestBody", {}).get("content", {})
            for media in body.values():
                ref = media.get("schema", {}).get("$ref", "")
                name = ref.rsplit("/", 1)[-1]
                if name in BODY_SCHEMA_NAMES:
                    media["schema"]["$ref"] = f"{SCHEMAS}{BODY_SCHEMA_NAMES[name]}"
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    for name in _reachable(answered, schemas):
        if "properties" in schemas[name]:  # objects, not enums such as Scope
            schemas[name].setdefault("additionalProperties", True)


def build_spec(app: FastAPI, *, optional_auth: bool = False) -> dict[str, Any]:
    """The document without ``servers``, built once per app (``optional_auth``: the service
    runs with authentication off)."""
    if app.openapi_schema is None:
        spec = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
        )
        _shape(spec, optional_auth)
        app.openapi_schema = spec
    return app.openapi_schema


def with_servers(spec: dict[str, Any], url: str) -> dict[str, Any]:
    """``spec`` (not copied deeply) with ``url`` as its one server, right after ``info``."""
    head = {key: spec[key] for key in ("openapi", "info") if key in spec}
    servers = {"servers": [{"url": url.rstrip("/") or "/", "description": "this service"}]}
    return head | servers | {key: value for key, value in spec.items() if key not in head}


def served_spec(
    app: FastAPI, request: Request, public_url: str | None, *, optional_auth: bool
) -> dict[str, Any]:
    """What ``/openapi.json`` answers: the document, with the address clients should use."""
    spec = build_spec(app, optional_auth=optional_auth)
    return with_servers(spec, public_url or str(request.base_url))
