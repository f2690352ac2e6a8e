"""Static checks of the deployment files: Dockerfile, compose.yaml and .dockerignore.

No Docker engine is needed. The files are parsed; every command they run goes through the real
argument parser of its console script, every ``MNIST_API_*`` variable through the real settings,
and every path the Dockerfile copies is checked against the repository and ``.dockerignore``.
"""

from __future__ import annotations

import importlib
import itertools
import json
import os
import posixpath
import re
import shlex
import sys
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from mnist_api.kernel.settings import Settings, load_settings, replication_map

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
DOCKERIGNORE = ROOT / ".dockerignore"

PREFIX = "MNIST_API_"
APP_SERVICES = ("migrate", "api")
BASE_IMAGE = "python:3.11-slim"
CASSANDRA_PORT = 9042
# Words that end a command in a shell line.
SHELL_BREAKS = frozenset(
    {";", ";;", "&&", "||", "|", "&", "(", ")", ">", ">>", "<", "then", "else", "fi", "do", "done"}
)


# Parsing ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass(frozen=True)
class Stage:
    base: str  # with the global ARG defaults substituted
    name: str | None
    instructions: tuple[Instruction, ...]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with their ``\\`` continuations joined; comments and blank lines dropped."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # also inside a continuation, as Docker does
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        keyword, _, args = " ".join(pending).partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
        pending = []
    if pending:
        raise ValueError(f"the Dockerfile ends inside a continuation (line {start})")
    return instructions


def substitute(text: str, variables: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in variables:
            raise ValueError(f"{name} has no default")
        return variables[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, text)


def split_stages(instructions: list[Instruction]) -> list[Stage]:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    current: list[Instruction] | None = None
    base, name = "", None
    for instruction in instructions:
        if instruction.keyword == "FROM":
            if current is not None:
                stages.append(Stage(base, name, tuple(current)))
            words = [w for w in instruction.args.split() if not w.startswith("--")]
            base = substitute(words[0], global_args)
            name = words[2] if len(words) == 3 and words[1].lower() == "as" else None
            current = []
        elif current is None:
            if instruction.keyword == "ARG":
                key, _, default = instruction.args.partition("=")
                global_args[key.strip()] = default.strip().strip("\"'")
        else:
            current.append(instruction)
    if current is not None:
        stages.append(Stage(base, name, tuple(current)))
    return stages


def flags_and_words(args: str) -> tuple[dict[str, str], list[str]]:
    """``--from=builder --chown=app a b`` -> ({'from': 'builder', 'chown': 'app'}, ['a', 'b'])."""
    words = json.loads(args) if args.startswith("[") else shlex.split(args)
    flags: dict[str, str] = {}
    while words and words[0].startswith("--"):
        key, _, value = words.pop(0)[2:].partition("=")
        flags[key] = value
    return flags, words


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in stage.all("ENV"):
        words = shlex.split(instruction.args)
        if words and "=" not in words[0]:  # legacy ``ENV KEY value``
            env[words[0]] = " ".join(words[1:])
            continue
        for word in words:
            key, _, value = word.partition("=")
            env[key] = value
    return env


def shell_words(command: str | list[str]) -> list[str]:
    """Exec form as it is; shell form split like sh would, with operators as words of their own."""
    if isinstance(command, list):
        return [str(word) for word in command]
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    return list(lexer)


def instruction_command(args: str) -> str | list[str]:
    if args.startswith("["):
        words = json.loads(args)
        assert isinstance(words, list), args
        return [str(word) for word in words]
    return args


def interpolate(value: str) -> str:
    """Compose's ``${VAR:-default}`` with nothing set on the host: the value the file promises."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        body = match.group(1) or match.group(2)
        name, op, default = re.match(r"^(\w+)(:?-)?(.*)$", body, re.S).groups()  # type: ignore[union-attr]
        if op is None:
            pytest.fail(f"{value!r} needs ${name} from the host; give it a default")
        return default

    return re.sub(r"\$\$|\$\{([^}]*)\}|\$(\w+)", replace, value)


def service_environment(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    env: dict[str, str] = {}
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            pytest.fail(f"compose rejects {key}: {value!r}; environment values must be strings")
        env[key] = interpolate(str(value))
    return env


def container_ports(service: dict[str, Any]) -> set[int]:
    ports: set[int] = set()
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            ports.add(int(entry["target"]))
        else:
            ports.add(int(str(entry).split("/")[0].rsplit(":", 1)[-1]))
    return ports


def named_volume_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Named volume -> target path (bind mounts, which start with . / or ~, are left out)."""
    mounts: dict[str, str] = {}
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            source, target = entry.get("source", ""), entry["target"]
            if entry.get("type", "volume") != "volume":
                continue
        else:
            source, _, rest = str(entry).partition(":")
            target = rest.split(":")[0]
        if source and not source.startswith((".", "/", "~")):
            mounts[source] = target
    return mounts


def ignore_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go's filepath.Match plus ``**``) as a regular expression."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end].replace("\\", "\\\\")
            out, i = out + "[" + ("^" + body[1:] if body.startswith("^") else body) + "]", end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


@dataclass(frozen=True)
class DockerIgnore:
    rules: tuple[tuple[bool, re.Pattern[str]], ...]

    @classmethod
    def parse(cls, text: str) -> DockerIgnore:
        rules = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            pattern = posixpath.normpath(line.removeprefix("!").strip().strip("/"))
            rules.append((negate, ignore_regex(pattern)))
        return cls(tuple(rules))

    def ignores(self, path: str) -> bool:
        """Docker's rule: the last matching pattern wins; a matched folder takes its contents."""
        parts = PurePosixPath(path).parts
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        ignored = False
        for negate, regex in self.rules:
            if any(regex.fullmatch(prefix) for prefix in prefixes):
                ignored = not negate
        return ignored


# Fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def scripts(pyproject: dict[str, Any]) -> dict[str, str]:
    """Console script -> ``module:function`` from ``[project.scripts]``."""
    found: dict[str, str] = pyproject["project"]["scripts"]
    return found


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return split_stages(parse_dockerfile(DOCKERFILE.read_text()))


@pytest.fixture(scope="module")
def runtime(stages: list[Stage]) -> Stage:
    return stages[-1]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict), "compose.yaml is not a mapping"
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose.get("services") or {}
    return found


@pytest.fixture(scope="module")
def dockerignore() -> DockerIgnore:
    return DockerIgnore.parse(DOCKERIGNORE.read_text())


@pytest.fixture
def container_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, runtime: Stage
) -> Callable[[dict[str, str]], None]:
    """Make this process's environment what a container of the image sees (image ENV, then the
    service's own), with no other MNIST_API_* variable and no .env file in the way."""

    def apply(service_env: dict[str, str]) -> None:
        for key in list(os.environ):
            if key.startswith(PREFIX):
                monkeypatch.delenv(key)
        monkeypatch.chdir(tmp_path)
        for key, value in {**env_of(runtime), **service_env}.items():
            if key.startswith(PREFIX):
                monkeypatch.setenv(key, value)

    return apply


def parser_for(script: str, scripts: dict[str, str]) -> Any:
    """The script's real argparse parser, built now (``serve`` reads its defaults from the env)."""
    module = importlib.import_module(scripts[script].partition(":")[0])
    return module._parser()


def cli_invocations(words: list[str], scripts: dict[str, str]) -> Iterator[tuple[str, list[str]]]:
    """(script, arguments) for every console script, or ``python -m`` of its package, in words."""
    modules: dict[str, str] = {}
    for script, target in scripts.items():
        module = target.partition(":")[0]
        modules[module] = script
        modules[module.partition(".")[0]] = script  # the package's __main__
    for index, word in enumerate(words):
        name = PurePosixPath(word).name
        if name in scripts:
            script, rest = name, words[index + 1 :]
        elif (
            name.startswith("python")
            and words[index + 1 : index + 2] == ["-m"]
            and index + 2 < len(words)
            and words[index + 2] in modules
        ):
            script, rest = modules[words[index + 2]], words[index + 3 :]
        else:
            continue
        arguments: list[str] = []
        for argument in rest:
            if argument in SHELL_BREAKS:
                break
            arguments.append(argument)
        yield script, arguments


def all_invocations(
    stages: list[Stage], services: dict[str, dict[str, Any]], scripts: dict[str, str]
) -> list[tuple[str, str, list[str]]]:
    """(where, script, arguments) of every CLI command the Dockerfile and compose.yaml run."""
    found: list[tuple[str, str, list[str]]] = []
    for stage in stages:
        for instruction in stage.instructions:
            if instruction.keyword in {"RUN", "CMD", "ENTRYPOINT"}:
                words = shell_words(instruction_command(instruction.args))
                where = f"Dockerfile line {instruction.line}"
                found += [(where, s, a) for s, a in cli_invocations(words, scripts)]
    for name, service in services.items():
        for key in ("command", "entrypoint"):
            if key in service:
                words = shell_words(service[key])
                found += [
                    (f"compose {name}.{key}", s, a) for s, a in cli_invocations(words, scripts)
                ]
    return found


# Dockerfile ------------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_on_python_slim(stages: list[Stage]) -> None:
    assert len(stages) >= 2, "the Dockerfile needs a build stage and a runtime stage"
    names = {stage.name for stage in stages}
    for stage in stages:
        if stage.base not in names:
            assert stage.base == BASE_IMAGE, f"stage {stage.name} starts from {stage.base}"
    assert stages[-1].base == BASE_IMAGE, "the runtime stage must start from the slim image"


def created_users(stage: Stage) -> set[str]:
    """Names and uids of the users ``useradd`` creates in the stage's RUN instructions."""
    found: set[str] = set()
    for instruction in stage.all("RUN"):
        words = shell_words(instruction.args)
        for index, word in enumerate(words):
            if word not in {"useradd", "adduser"}:
                continue
            arguments: list[str] = []
            for argument in words[index + 1 :]:
                if argument in SHELL_BREAKS:
                    break
                arguments.append(argument)
            for flag, value in itertools.pairwise(arguments):
                if flag in {"--uid", "-u"}:
                    found.add(value)
            found |= {a.partition("=")[2] for a in arguments if a.startswith("--uid=")}
            if arguments and not arguments[-1].startswith("-"):
                found.add(arguments[-1])
    return found


def runtime_user(runtime: Stage) -> str:
    users = runtime.all("USER")
    assert users, "the runtime stage has no USER: it would run as root"
    return users[-1].args.split(":")[0]


def test_runtime_stage_runs_as_a_created_non_root_user(runtime: Stage) -> None:
    user = runtime_user(runtime)
    assert user not in {"root", "0"}, f"USER {user} is root"
    created = created_users(runtime)
    assert user in created, f"the runtime stage never creates user {user} (it creates {created})"
    assert "0" not in created, "a second root account"


def test_runtime_stage_holds_only_the_venv_and_the_models(
    stages: list[Stage], runtime: Stage
) -> None:
    env = env_of(runtime)
    earlier = {stage.name for stage in stages[:-1]}
    copied: set[str] = set()
    for instruction in runtime.all("COPY") + runtime.all("ADD"):
        flags, words = flags_and_words(instruction.args)
        assert flags.get("from") in earlier, f"line {instruction.line} copies from the context"
        copied.add(words[-1].rstrip("/"))
    venv = env["PATH"].split(":")[0].removesuffix("/bin")
    assert venv in copied, f"the venv {venv} (first on PATH) is not copied in"
    assert env["MNIST_API_MODEL_PATH"] in copied, "nothing is copied to MNIST_API_MODEL_PATH"


def test_runtime_environment(runtime: Stage) -> None:
    env = env_of(runtime)
    assert env["MNIST_API_HOST"] == "0.0.0.0"
    assert int(env["MNIST_API_WORKERS"]) >= 1
    assert PurePosixPath(env["MNIST_API_MODEL_PATH"]).is_absolute()


def test_sqlite_folder_is_created_for_the_app_user(runtime: Stage) -> None:
    env = env_of(runtime)
    sqlite = PurePosixPath(env["MNIST_API_SQLITE_PATH"])
    assert sqlite.is_absolute(), "a relative SQLite path depends on the working directory"
    names = "|".join(map(re.escape, created_users(runtime) | {runtime_user(runtime)}))
    folder = str(sqlite.parent)
    owner = re.compile(rf"(chown|install)\b[^;&|]*\b({names})\b[^;&|]*{re.escape(folder)}\b")
    owned = [i for i in runtime.all("RUN") if owner.search(i.args)]
    assert owned, f"no RUN creates {folder} owned by the app user"


def test_exposes_8000(runtime: Stage) -> None:
    exposed = {int(w.split("/")[0]) for i in runtime.all("EXPOSE") for w in i.args.split()}
    assert exposed == {8000}
    assert env_of(runtime)["MNIST_API_PORT"] == "8000"


def test_healthcheck_polls_healthz_with_python(runtime: Stage) -> None:
    checks = runtime.all("HEALTHCHECK")
    assert checks, "the runtime stage has no HEALTHCHECK"
    text = checks[-1].args
    options, _, command = text.partition("CMD ")
    assert command, f"HEALTHCHECK without CMD: {text}"
    words = shell_words(instruction_command(command.strip()))
    assert PurePosixPath(words[0]).name.startswith("python"), "slim images have no curl or wget"
    assert "/healthz" in command
    assert "MNIST_API_PORT" in command or ":8000/" in command
    assert "--start-period" in options, "TensorFlow needs time to load: give a start period"


def test_runtime_command_serves(runtime: Stage) -> None:
    assert not runtime.all("ENTRYPOINT"), "an ENTRYPOINT would turn CMD into its arguments"
    cmds = runtime.all("CMD")
    assert cmds, "the runtime stage has no CMD"
    assert instruction_command(cmds[-1].args) == ["mnist-api", "serve"], "use the exec form"


def test_builder_installs_the_locked_deps_and_a_wheel(stages: list[Stage]) -> None:
    runs = [i.args for stage in stages[:-1] for i in stage.all("RUN")]
    assert any("requirements.lock" in run and "install" in run for run in runs)
    assert any(re.search(r"\.whl\b", run) for run in runs), "no wheel is installed"
    for run in runs:
        assert not re.search(r"(^|\s)(-e|--editable)(\s|$)", run), f"editable install: {run}"


def test_every_copied_path_exists_and_is_in_the_context(
    stages: list[Stage], dockerignore: DockerIgnore
) -> None:
    checked = 0
    for stage in stages:
        for instruction in stage.all("COPY") + stage.all("ADD"):
            flags, words = flags_and_words(instruction.args)
            if "from" in flags:
                continue
            for source in words[:-1]:
                matches = list(ROOT.glob(source)) if any(c in source for c in "*?[") else []
                path = ROOT / source
                assert matches or path.exists(), f"line {instruction.line}: {source} is missing"
                for found in matches or [path]:
                    files = [found] if found.is_file() else sorted(found.rglob("*"))
                    for file in files:
                        relative = file.relative_to(ROOT).as_posix()
                        if file.is_dir() or "__pycache__" in relative or file.suffix == ".pyc":
                            continue
                        assert not dockerignore.ignores(relative), f"{relative} is .dockerignored"
                        checked += 1
    assert checked, "the Dockerfile copies nothing from the repository"


def test_the_wheel_inputs_are_copied(stages: list[Stage], pyproject: dict[str, Any]) -> None:
    wheel = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = ["pyproject.toml", pyproject["project"]["readme"], *wheel["packages"]]
    needed += list(wheel.get("force-include", {}))
    sources = [
        PurePosixPath(posixpath.normpath(source))
        for stage in stages
        for instruction in stage.all("COPY")
        if "from" not in (parsed := flags_and_words(instruction.args))[0]
        for source in parsed[1][:-1]
    ]
    for path in map(PurePosixPath, needed):
        covered = any(path == s or s in path.parents or str(s) == "." for s in sources)
        assert covered, f"the wheel needs {path}, which the Dockerfile never copies"


def test_the_lock_pins_every_runtime_dependency(pyproject: dict[str, Any]) -> None:
    """The Dockerfile installs pyproject's dependencies with the lock as constraints: every
    package they pull in must be pinned there, at a version the declared range allows."""
    pins: dict[str, Version] = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line)
        if match:
            pins[canonicalize_name(match.group(1))] = Version(match.group(2))
    todo = [Requirement(text) for text in pyproject["project"]["dependencies"]]
    for requirement in todo:
        pinned = pins.get(canonicalize_name(requirement.name))
        assert pinned is not None, f"{requirement.name} is not in requirements.lock"
        assert requirement.specifier.contains(pinned, prereleases=True), f"{requirement}: {pinned}"
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        key = (name, frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        assert name in pins, f"{name} (needed at run time) is not pinned in requirements.lock"
        for text in metadata.requires(requirement.name) or []:
            dependency = Requirement(text)
            marker = dependency.marker
            if marker is None or any(
                marker.evaluate({"extra": extra}) for extra in ["", *requirement.extras]
            ):
                todo.append(dependency)
    assert len(seen) > len(pyproject["project"]["dependencies"])


# compose.yaml ----------------------------------------------------------------------------------


def test_compose_services(services: dict[str, dict[str, Any]]) -> None:
    assert {"cassandra", "migrate", "api"} <= set(services)


def test_cassandra_service(compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    cassandra = services["cassandra"]
    assert str(cassandra["image"]).startswith("cassandra:5.0")
    check = cassandra.get("healthcheck") or {}
    assert "cqlsh" in str(check.get("test")) or "nodetool" in str(check.get("test"))
    for key in ("interval", "retries", "start_period"):
        assert key in check, f"the Cassandra healthcheck has no {key}"
    mounts = named_volume_mounts(cassandra)
    data = [name for name, target in mounts.items() if target == "/var/lib/cassandra"]
    assert data, "Cassandra's data is not on a named volume"
    assert data[0] in (compose.get("volumes") or {}), f"volume {data[0]} is not declared"
    env = service_environment(cassandra)
    assert ("MAX_HEAP_SIZE" in env) == ("HEAP_NEWSIZE" in env), "cassandra-env.sh needs both"
    assert "MAX_HEAP_SIZE" in env


def test_every_named_volume_is_declared(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for volume in named_volume_mounts(service):
            assert volume in declared, f"{name} mounts undeclared volume {volume}"


def test_migrate_is_a_one_shot_upgrade(services: dict[str, dict[str, Any]]) -> None:
    migrate = services["migrate"]
    assert migrate["command"] == ["mnist-api", "db", "upgrade"]
    assert migrate["depends_on"]["cassandra"]["condition"] == "service_healthy"
    assert migrate.get("restart") == "no"


def test_api_waits_for_cassandra_and_the_migration(services: dict[str, dict[str, Any]]) -> None:
    api = services["api"]
    depends = api["depends_on"]
    assert depends["cassandra"]["condition"] == "service_healthy"
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert api.get("restart") == "unless-stopped"
    assert "command" not in api, "the api runs the image's CMD (mnist-api serve)"
    assert "/readyz" in str((api.get("healthcheck") or {}).get("test"))


def test_app_services_build_this_dockerfile(
    services: dict[str, dict[str, Any]], stages: list[Stage]
) -> None:
    declared_args = {
        i.args.partition("=")[0].strip() for stage in stages for i in stage.all("ARG")
    } | {"PYTHON_IMAGE"}
    builds = []
    for name in APP_SERVICES:
        build = services[name].get("build")
        assert isinstance(build, dict), f"{name} is not built from the Dockerfile"
        assert (ROOT / build.get("context", ".")).resolve() == ROOT
        assert (ROOT / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE
        assert build.get("target", stages[-1].name) == stages[-1].name, "not the runtime stage"
        unknown = set(build.get("args") or {}) - declared_args
        assert not unknown, f"{name} passes build args the Dockerfile lacks: {unknown}"
        builds.append((services[name].get("image"), build))
    assert builds[0] == builds[1], "migrate and api must run the same image"


def test_shared_environment_is_written_once() -> None:
    text = COMPOSE.read_text()
    assert text.count("MNIST_API_CASSANDRA_CONTACT_POINTS:") == 1


def test_api_publishes_the_port_it_serves_on(
    services: dict[str, dict[str, Any]],
    runtime: Stage,
    scripts: dict[str, str],
    container_env: Callable[[dict[str, str]], None],
) -> None:
    api = services["api"]
    container_env(service_environment(api))
    parser_for("mnist-api", scripts).parse_args(["serve"])
    args = load_settings()  # `serve` takes host, port and workers from the settings
    exposed = {int(w.split("/")[0]) for i in runtime.all("EXPOSE") for w in i.args.split()}
    assert args.host == "0.0.0.0", "inside a container the server must listen on all interfaces"
    assert args.workers >= 1
    assert args.port in container_ports(api), f"the api publishes {container_ports(api)}"
    assert args.port in exposed, f"the image exposes {exposed}"
    healthcheck = str(api["healthcheck"]["test"])
    assert "/readyz" in healthcheck
    assert f":{args.port}/" in healthcheck or "MNIST_API_PORT" in healthcheck


# Both files ------------------------------------------------------------------------------------


def test_every_mnist_api_variable_is_a_setting(
    services: dict[str, dict[str, Any]], runtime: Stage
) -> None:
    known = {PREFIX + field.upper() for field in Settings.model_fields}
    used = {("Dockerfile", key) for key in env_of(runtime) if key.startswith(PREFIX)}
    for name in APP_SERVICES:
        used |= {(name, k) for k in service_environment(services[name]) if k.startswith(PREFIX)}
    assert {key for _, key in used} >= {"MNIST_API_STORE", "MNIST_API_MODEL_PATH"}
    unknown = sorted(f"{where}: {key}" for where, key in used if key not in known)
    assert not unknown, f"not settings of mnist_api (ignored at run time): {unknown}"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_service_settings_validate_for_the_single_node(
    service: str,
    services: dict[str, dict[str, Any]],
    container_env: Callable[[dict[str, str]], None],
) -> None:
    container_env(service_environment(services[service]))
    settings = load_settings()
    assert settings.store == "cassandra"
    assert settings.cassandra_contact_points == ["cassandra"]
    assert set(settings.cassandra_contact_points) <= set(services), "contact points are services"
    assert settings.cassandra_port == CASSANDRA_PORT
    nodes = sum(str(s.get("image", "")).startswith("cassandra:") for s in services.values())
    replication = replication_map(settings.cassandra_replication)
    factors = [v for k, v in replication.items() if k != "class" and isinstance(v, int)]
    assert factors, f"no replication factor in {replication}"
    assert max(factors) <= nodes, f"replication {replication} on {nodes} node(s)"
    rf = max(factors)
    replicas = {"ALL": rf, "QUORUM": rf // 2 + 1, "LOCAL_QUORUM": rf // 2 + 1, "TWO": 2, "THREE": 3}
    needed = replicas.get(settings.cassandra_consistency, 1)
    assert needed <= nodes, f"{settings.cassandra_consistency} needs {needed} replicas"
    assert settings.cassandra_consistency == "ONE"
    assert settings.model_path == Path("/app/models")


def test_every_command_is_a_real_console_script_and_subcommand(
    stages: list[Stage],
    services: dict[str, dict[str, Any]],
    scripts: dict[str, str],
    runtime: Stage,
    container_env: Callable[[dict[str, str]], None],
) -> None:
    found = all_invocations(stages, services, scripts)
    commands = {(script, args[0] if args else "") for _, script, args in found}
    expected = {("mnist-api", "serve"), ("mnist-api", "db"), ("mnist-train", "train")}
    assert expected <= commands, f"missing {expected - commands}"
    container_env({})
    for where, script, args in found:
        try:
            parser_for(script, scripts).parse_args(args)
        except SystemExit as exc:
            pytest.fail(f"{where}: `{script} {' '.join(args)}` is rejected by its parser ({exc})")


def test_the_trained_model_lands_where_the_service_looks(
    stages: list[Stage], runtime: Stage, scripts: dict[str, str]
) -> None:
    model_path = env_of(runtime)["MNIST_API_MODEL_PATH"]
    sources = {
        words[0].rstrip("/"): flags["from"]
        for instruction in runtime.all("COPY")
        for flags, words in [flags_and_words(instruction.args)]
        if words[-1].rstrip("/") == model_path and "from" in flags
    }
    assert sources, f"nothing is copied to {model_path}"
    (source, stage_name), *_ = sources.items()
    stage = next(s for s in stages if s.name == stage_name)
    outputs = []
    for instruction in stage.all("RUN"):
        for script, args in cli_invocations(shell_words(instruction.args), scripts):
            if script == "mnist-train" and args[:1] == ["train"]:
                parsed = parser_for(script, scripts).parse_args(args)
                assert parsed.model == "cnn"
                outputs.append(parsed.output.as_posix())
    assert outputs, f"stage {stage_name} never runs mnist-train train"
    assert outputs == [source], f"it trains into {outputs}, the image takes {source}"


# .dockerignore ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        "models/LATEST",
        "data/mnist/train-images-idx3-ubyte.gz",
        "var/predictions.sqlite3",
        "test-artifacts/server.log",
        "tests/conftest.py",
        ".mypy_cache/3.11/x.json",
        ".ruff_cache/CACHEDIR.TAG",
        ".pytest_cache/README.md",
        "src/mnist_api/__pycache__/cli.cpython-311.pyc",
        ".env",
    ],
)
def test_dockerignore_keeps_local_state_out(dockerignore: DockerIgnore, path: str) -> None:
    assert dockerignore.ignores(path)


@pytest.mark.parametrize(
    "path", ["pyproject.toml", "requirements.lock", "README.md", "src/mnist_api/cli.py", "cql"]
)
def test_dockerignore_keeps_the_build_inputs(dockerignore: DockerIgnore, path: str) -> None:
    assert not dockerignore.ignores(path)


def test_docker_waits_for_the_drain(services: dict[str, dict[str, Any]]) -> None:
    """Docker kills a container ``stop_grace_period`` after SIGTERM (10 s unless set): it must
    outlast the service's own grace period, or the requests still in flight would be cut."""
    grace = Settings.model_fields["grace_period_s"].default
    given = str(services["api"]["stop_grace_period"])
    assert given.endswith("s")
    assert float(given.removesuffix("s")) > grace


# compose.yaml's fleet profile: two instances behind HAProxy, the settings scripts/fleet uses.

FLEET_SERVICES = ("api-1", "api-2")
HAPROXY_DIR = ROOT / "deploy" / "haproxy"


def fleet_module() -> Any:
    spec = importlib.util.spec_from_file_location("fleet", ROOT / "tools" / "fleet.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def test_the_compose_balancer_config_is_the_fleets() -> None:
    """deploy/haproxy/haproxy.cfg is what scripts/fleet makes (regenerate it with
    `scripts/fleet --compose-config > deploy/haproxy/haproxy.cfg`)."""
    written = (HAPROXY_DIR / "haproxy.cfg").read_text(encoding="utf-8")
    assert written == fleet_module().compose_config()


def test_haproxy_takes_the_compose_config() -> None:
    """HAProxy's own check of the file, with the addresses the image gives it."""
    import shutil
    import subprocess

    haproxy = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
    assert haproxy, "HAProxy is not installed (apt-get install haproxy)"
    env = {"PATH": "/usr/bin:/bin", "BIND": ":8080", "API_1": "127.0.0.1:8101"}
    env["API_2"] = "127.0.0.1:8102"
    checked = subprocess.run(
        [haproxy, "-c", "-f", str(HAPROXY_DIR / "haproxy.cfg")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_fleet_profile_matches_its_balancer(services: dict[str, dict[str, Any]]) -> None:
    config = (HAPROXY_DIR / "haproxy.cfg").read_text(encoding="utf-8")
    servers = re.findall(r"^\s+server (\S+) ", config, re.M)
    assert tuple(servers) == FLEET_SERVICES
    image_env = dict(
        re.findall(r"^\s+(API_\d)=(\S+)", (HAPROXY_DIR / "Dockerfile").read_text(), re.M)
    )
    assert sorted(image_env.values()) == [f"{name}:8000" for name in FLEET_SERVICES]
    for name in FLEET_SERVICES:
        instance = services[name]
        assert instance["profiles"] == ["fleet"]
        env = service_environment(instance)
        assert env["MNIST_API_INSTANCES"] == str(len(FLEET_SERVICES))
        # A draining instance keeps taking connections until HAProxy's check has seen it.
        check_s = int(re.search(r"inter (\d+)ms fall (\d+)", config).group(1)) / 1000  # type: ignore[union-attr]
        assert float(env["MNIST_API_DRAIN_DELAY_S"]) > 2 * check_s
        grace = Settings.model_fields["grace_period_s"].default
        assert float(str(instance["stop_grace_period"]).removesuffix("s")) > grace
        assert instance["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    balancer = services["balancer"]
    assert balancer["profiles"] == ["fleet"]
    assert set(balancer["depends_on"]) == set(FLEET_SERVICES)
    assert (ROOT / balancer["build"]["context"]).resolve() == HAPROXY_DIR
    # Outside the profile, `docker compose up` starts what it always did.
    assert [name for name in ("cassandra", *APP_SERVICES) if "profiles" in services[name]] == []
