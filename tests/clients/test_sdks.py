"""SDKs in the languages clients use, generated from the live server's ``/openapi.json`` with
pinned generators and used against the real server:

- Go and Java (okhttp-gson) by OpenAPI Generator (its CLI jar from Maven Central);
- TypeScript: types by openapi-typescript, calls by openapi-fetch (versions pinned by
  ``clients/typescript/package-lock.json``), type-checked by ``tsc`` and run by Node.

Each program in ``clients/`` does what an application does: upload and check the digit, page the
history with the cursor, correct a label and read it back, download the image and compare its
bytes, upload a batch, delete, and read the 404 that follows as its typed problem. Each also runs
through a proxy that adds a field the clients have never seen to every JSON object the server
answers: a client generated from today's spec must keep working when later versions add fields;
and once more against a server that needs API keys, with a key, through each SDK's own way of
sending one (Go's ContextAccessToken, Java's setBearerToken, a header of openapi-fetch's client).

Tools come from the registries and are cached: the generator jar and Java libraries in Maven's
local repository, Go modules in Go's module cache, npm packages in npm's cache.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.data import ROOT
from tests.fixtures.servers import LiveServer, SecuredServer, clean_env

pytestmark = pytest.mark.slow
CLIENTS = ROOT / "clients"
OPENAPI_GENERATOR = "org.openapitools:openapi-generator-cli:7.25.0"
GENERATOR_JAR = "openapi-generator-cli-7.25.0.jar"
STEPS = [
    "ok: uploads answered with their digits",
    "ok: history pages newest first with the cursor",
    "ok: label set and read back",
    "ok: image bytes equal to the upload",
    "ok: batch with one result per file",
    "ok: deleted; the 404 read as a typed Problem: Prediction not found",
]
# What the proxy adds to every JSON object: a field of a kind no generated model has.
ADDED_FIELD = {"x_added_later": {"note": "a field from a later version", "values": [1, 2.5, None]}}


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed (scripts/test installs it from Debian's packages)")
    return found


def run(command: list[str], cwd: Path, timeout: float = 600) -> str:
    """Runs a build or generator step in a new shell's environment; its output on failure."""
    paths = {str(Path(tool(c)).parent) for c in ("java", "mvn", "go", "node", "npm")}
    env = clean_env()
    env["PATH"] = ":".join([*sorted(paths), env["PATH"]])
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{output[-6000:]}"
    return output


# --- a server from a later version: every JSON object carries one more field -------------------


def with_added_field(value: Any) -> Any:
    if isinstance(value, dict):
        return {**{k: with_added_field(v) for k, v in value.items()}, **ADDED_FIELD}
    if isinstance(value, list):
        return [with_added_field(v) for v in value]
    return value


def proxy_handler(upstream: str) -> type[BaseHTTPRequestHandler]:
    hop = {"host", "connection", "content-length", "transfer-encoding", "keep-alive"}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return None

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _forward(self) -> None:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in hop}
            answer = httpx.request(
                self.command,
                upstream + self.path,
                content=self._body(),
                headers=headers,
                timeout=60,
            )
            content = answer.content
            if content and "json" in answer.headers.get("content-type", ""):
                content = json.dumps(with_added_field(answer.json())).encode()
            self.send_response(answer.status_code)
            for key, value in answer.headers.items():
                if key.lower() not in hop | {"content-encoding"}:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = do_PUT = do_DELETE = _forward

    return Handler


@pytest.fixture(scope="module")
def later_server(live_server: LiveServer) -> Iterator[str]:
    """The live server behind a proxy that adds a field to every JSON object it answers."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), proxy_handler(live_server.url))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_proxy_really_adds_a_field(later_server: str, live_server: LiveServer) -> None:
    page = httpx.get(f"{later_server}/v1/predictions?limit=1", timeout=30).json()
    assert page["x_added_later"] == ADDED_FIELD["x_added_later"]
    assert set(httpx.get(f"{live_server.url}/healthz").json()) == {"status"}


# --- the document and the generators -----------------------------------------------------------


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sdks")


@pytest.fixture(scope="module")
def spec_file(live_server: LiveServer, work: Path) -> Path:
    response = httpx.get(f"{live_server.url}/openapi.json", timeout=30)
    assert response.status_code == 200
    path = work / "openapi.json"
    path.write_bytes(response.content)
    return path


@pytest.fixture(scope="module")
def data_dir(golden: dict[int, bytes], work: Path) -> Path:
    """The files the programs upload: the golden digits, and a file that is not an image."""
    folder = work / "data"
    folder.mkdir()
    for digit, png in golden.items():
        (folder / f"digit-{digit}.png").write_bytes(png)
    (folder / "not-an-image.txt").write_text("plain text\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def generator(work: Path) -> list[str]:
    """OpenAPI Generator's CLI, from Maven Central (cached in Maven's local repository)."""
    run(
        [
            tool("mvn"), "-q", "-B", "dependency:copy", f"-Dartifact={OPENAPI_GENERATOR}",
            f"-DoutputDirectory={work}",
        ],
        work,
    )  # fmt: skip
    return [tool("java"), "-jar", str(work / GENERATOR_JAR)]


def test_the_spec_validates_with_openapi_generator(generator: list[str], spec_file: Path) -> None:
    output = run([*generator, "validate", "--input-spec", str(spec_file), "--recommend"], ROOT)
    assert "No validation issues detected." in output, output


# --- the programs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Program:
    command: list[str]
    cwd: Path

    def run_against(self, url: str, data: Path, key: str | None = None) -> list[str]:
        result = subprocess.run(
            [*self.command, url, str(data)],
            cwd=self.cwd,
            env=clean_env(**({"MNIST_API_KEY": key} if key else {})),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout.splitlines()


def assert_every_step(lines: list[str]) -> None:
    assert len(lines) == len(STEPS), lines
    for line, step in zip(lines, STEPS, strict=True):
        assert line.startswith(step), (line, step)


@pytest.fixture(scope="module")
def go_program(generator: list[str], spec_file: Path, work: Path) -> Program:
    folder = work / "go"
    run(
        [
            *generator, "generate", "-g", "go", "-i", str(spec_file), "-o", str(folder / "client"),
            "--package-name", "mnistclient", "--git-host", "example.org",
            "--git-user-id", "mnist", "--git-repo-id", "client",
        ],
        work,
    )  # fmt: skip
    shutil.copytree(CLIENTS / "go", folder / "app")
    run([tool("go"), "build", "-o", "sdkcheck", "."], folder / "app")
    return Program([str(folder / "app" / "sdkcheck")], folder / "app")


@pytest.fixture(scope="module")
def java_program(generator: list[str], spec_file: Path, work: Path) -> Program:
    folder = work / "java"
    client = folder / "client"
    run(
        [
            *generator, "generate", "-g", "java", "--library", "okhttp-gson",
            "-i", str(spec_file), "-o", str(client),
            "--invoker-package", "org.example.mnist", "--api-package", "org.example.mnist.api",
            "--model-package", "org.example.mnist.model",
            "--group-id", "org.example", "--artifact-id", "mnist-client",
            "--artifact-version", "1.0.0",
        ],
        work,
    )  # fmt: skip
    run(
        [
            tool("mvn"), "-q", "-B", "package", "-DskipTests", "-Dmaven.javadoc.skip=true",
            "-Dmaven.source.skip=true",
        ],
        client,
    )  # fmt: skip
    run(
        [
            tool("mvn"), "-q", "-B", "dependency:build-classpath", "-Dmdep.outputFile=cp.txt",
            "-Dmdep.excludeScope=test",
        ],
        client,
    )  # fmt: skip
    classpath = ":".join(
        [str(client / "target" / "mnist-client-1.0.0.jar"), (client / "cp.txt").read_text()]
    )
    app = folder / "app"
    app.mkdir()
    shutil.copy(CLIENTS / "java" / "SdkCheck.java", app)
    run([tool("javac"), "-d", "classes", "-cp", classpath, "SdkCheck.java"], app)
    return Program([tool("java"), "-cp", f"classes:{classpath}", "SdkCheck"], app)


@pytest.fixture(scope="module")
def typescript_program(spec_file: Path, work: Path) -> Program:
    app = work / "typescript"
    shutil.copytree(CLIENTS / "typescript", app, ignore=shutil.ignore_patterns("node_modules"))
    run([tool("npm"), "ci", "--no-audit", "--no-fund"], app)
    npx = str(Path(tool("npm")).parent / "npx")
    run([npx, "openapi-typescript", str(spec_file), "--output", "schema.d.ts"], app)
    run([npx, "tsc", "--project", "tsconfig.json"], app)
    return Program([tool("node"), "dist/main.js"], app)


class TestGo:
    def test_every_step_against_the_server(
        self, go_program: Program, live_server: LiveServer, data_dir: Path
    ) -> None:
        assert_every_step(go_program.run_against(live_server.url, data_dir))

    def test_every_step_against_a_server_that_added_fields(
        self, go_program: Program, later_server: str, data_dir: Path
    ) -> None:
        assert_every_step(go_program.run_against(later_server, data_dir))

    def test_every_step_with_a_key(
        self, go_program: Program, secured_server: SecuredServer, data_dir: Path
    ) -> None:
        key = secured_server.key("go sdk", "--rate", "1000/s")
        assert_every_step(go_program.run_against(secured_server.url, data_dir, key))


class TestJava:
    def test_every_step_against_the_server(
        self, java_program: Program, live_server: LiveServer, data_dir: Path
    ) -> None:
        assert_every_step(java_program.run_against(live_server.url, data_dir))

    def test_every_step_against_a_server_that_added_fields(
        self, java_program: Program, later_server: str, data_dir: Path
    ) -> None:
        assert_every_step(java_program.run_against(later_server, data_dir))

    def test_every_step_with_a_key(
        self, java_program: Program, secured_server: SecuredServer, data_dir: Path
    ) -> None:
        key = secured_server.key("java sdk", "--rate", "1000/s")
        assert_every_step(java_program.run_against(secured_server.url, data_dir, key))


class TestTypeScript:
    def test_every_step_against_the_server(
        self, typescript_program: Program, live_server: LiveServer, data_dir: Path
    ) -> None:
        assert_every_step(typescript_program.run_against(live_server.url, data_dir))

    def test_every_step_against_a_server_that_added_fields(
        self, typescript_program: Program, later_server: str, data_dir: Path
    ) -> None:
        assert_every_step(typescript_program.run_against(later_server, data_dir))

    def test_every_step_with_a_key(
        self, typescript_program: Program, secured_server: SecuredServer, data_dir: Path
    ) -> None:
        key = secured_server.key("typescript sdk", "--rate", "1000/s")
        assert_every_step(typescript_program.run_against(secured_server.url, data_dir, key))
