"""Property-based tests of the served spec against the real server, with schemathesis.

``schemathesis run`` reads ``/openapi.json`` from the live uvicorn server and, for every
operation, sends the spec's examples, its boundary and invalid cases (missing and wrong fields,
malformed bodies, methods a path does not take), randomly generated valid and invalid requests,
and sequences that follow the spec's links from an upload to the operations on its id. Every
answer is checked against the spec: no server error, only documented statuses, the documented
content types and headers, bodies that match their schemas, invalid data refused, and 405 with
an exact ``Allow`` header. Generation is deterministic, so a failure reproduces; the report is
written to ``test-artifacts/schemathesis/``.

Random bytes are never a digit, so a generated upload cannot create a prediction: the ids of real
ones (uploaded here first) are offered for ``prediction_id`` half of the time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.fixtures.servers import LiveServer, clean_env

pytestmark = pytest.mark.slow
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
EXAMPLES = 60  # generated cases per operation and phase
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "use_after_free",
    "ensure_resource_availability",
)


def config(prediction_ids: list[str]) -> str:
    """schemathesis.toml: real ids offered for every ``prediction_id`` path parameter."""
    values = ", ".join(json.dumps(value) for value in prediction_ids)
    return (
        f"[dictionaries.predictions]\nvalues = [{values}]\n\n"
        '[parameters]\n"path.prediction_id" = { dictionary = "predictions", probability = 0.5 }\n'
    )


def test_every_operation_answers_as_its_spec_says(
    live_server: LiveServer, golden: dict[int, bytes], artifacts_dir: Path, tmp_path: Path
) -> None:
    ids = []
    for digit, png in golden.items():
        created = httpx.post(
            f"{live_server.url}/v1/predictions", files={"file": (f"{digit}.png", png)}, timeout=30
        )
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    config_file = tmp_path / "schemathesis.toml"
    config_file.write_text(config(ids), encoding="utf-8")
    report = artifacts_dir / "schemathesis"
    command = [
        str(SCHEMATHESIS),
        "--config-file", str(config_file),
        "--no-color",
        "run", f"{live_server.url}/openapi.json",
        "--checks", ",".join(CHECKS),
        "--max-examples", str(EXAMPLES),
        "--generation-deterministic",
        "--workers", "1",
        "--request-timeout", "30",
        "--report", "junit",
        "--report-dir", str(report),
    ]  # fmt: skip
    result = subprocess.run(
        command,
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = result.stdout + result.stderr
    (report / "output.txt").write_text(output, encoding="utf-8")
    assert result.returncode == 0, output[-12000:]
    summary = output[output.rfind("SUMMARY") :]
    assert "Tested: 17" in summary, summary  # every operation of the spec
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in summary, summary
