"""The deploy files of every supported answer are valid and agree with each other.

The Dockerfile, the compose file, the CI files and the Kubernetes manifests of every
combination are checked statically, offline: hadolint, check-jsonschema's built-in
`vendor.*` schemas, kubernetes-validate --strict against the newest Kubernetes it ships,
and `kubectl kustomize` where kubectl is installed. Beyond validity, the files must agree:
one PostgreSQL version, one Python version, and the Procfile's commands wherever a
process is started. Each combination is baked once per session and each validator runs
once per distinct file. The image and the compose stack are also built and run on a real
engine, in test_container_image.py and test_compose_stack.py.
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate.utils import latest_version

from harness import TEMPLATE_DIR, choices, read_procfile

TOOLS_DIR = Path(sys.executable).parent
KUBERNETES_VERSION = latest_version()

# Every combination of the answers that shape deploy files, with the default Python;
# then each other Python with both CI systems, since Python shows in the image and CI.
DEPLOY_QUESTIONS = ("ci", "kubernetes", "worker", "postgres_version")
COMBINATIONS: list[dict[str, str]] = [
    dict(zip(DEPLOY_QUESTIONS, values, strict=True))
    for values in itertools.product(*(choices(question) for question in DEPLOY_QUESTIONS))
] + [
    {"python_version": python, "ci": ci, "worker": "celery"}
    for python in choices("python_version")[1:]
    for ci in ("github", "gitlab")
]

LOCAL_ONLY_PATHS = (
    ".env",
    ".flaskenv",
    ".git",
    ".venv",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
)
# Where the containers' temporary files go: a tmpfs or a memory emptyDir, never the image.
TMPFS = "/tmp"  # noqa: S108 - a path inside the containers, not a file of ours
# A compose port mapping: [ip:][host port or range:]container port.
PORT_MAPPING = re.compile(r"(?:[\d.]+:)?(?:(?P<host>[^:]+):)?(?P<container>\$\{[^}]*\}|\d+)")


def answer(answers: dict[str, str], question: str) -> str:
    """The answer given, or the question's default."""
    return answers.get(question, choices(question)[0])


def combination_id(answers: dict[str, str]) -> str:
    """A readable test id, e.g. github-k8s-celery-pg17, with -py3.13 for another Python."""
    kubernetes = "k8s" if answer(answers, "kubernetes") == "yes" else "nok8s"
    parts = [answer(answers, "ci"), kubernetes, answer(answers, "worker")]
    parts.append(f"pg{answer(answers, 'postgres_version')}")
    if "python_version" in answers:
        parts.append(f"py{answers['python_version']}")
    return "-".join(parts)


def combinations_with(**chosen: str) -> list[Any]:
    """The combinations (as test parameters) whose answers include these."""
    return [
        pytest.param(answers, id=combination_id(answers))
        for answers in COMBINATIONS
        if all(answer(answers, name) == value for name, value in chosen.items())
    ]


ALL = combinations_with()
WITH_KUBERNETES = combinations_with(kubernetes="yes")
WITH_GITHUB = combinations_with(ci="github")
WITH_GITLAB = combinations_with(ci="gitlab")


# ---------------------------------------------------------------------------------------
# Reading the baked files
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined and comments dropped."""

    keyword: str
    arguments: str


def parse_dockerfile(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile, in order."""
    instructions = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


@dataclass(frozen=True)
class Stage:
    """A build stage: its name and its instructions after FROM."""

    name: str
    base: str
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[str]:
        """The arguments of every instruction with this keyword."""
        return [i.arguments for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        """The variables that ENV sets in this stage."""
        variables = {}
        for arguments in self.all("ENV"):
            for item in shlex.split(arguments):
                name, _, value = item.partition("=")
                variables[name] = value
        return variables


@dataclass(frozen=True)
class Dockerfile:
    """A parsed Dockerfile: the global ARGs and the stages."""

    global_args: dict[str, str]
    stages: list[Stage]

    @classmethod
    def parse(cls, text: str) -> Dockerfile:
        """Split the instructions into the part before the first FROM and the stages."""
        global_args: dict[str, str] = {}
        stages: list[Stage] = []
        for instruction in parse_dockerfile(text):
            if instruction.keyword == "FROM":
                base, _, name = instruction.arguments.partition(" AS ")
                stages.append(Stage(name.strip(), base.strip(), []))
            elif not stages:
                if instruction.keyword == "ARG":
                    name, _, default = instruction.arguments.partition("=")
                    global_args[name] = default
            else:
                stages[-1].instructions.append(instruction)
        return cls(global_args, stages)

    @property
    def runtime(self) -> Stage:
        """The last stage: what `docker build` produces by default."""
        return self.stages[-1]

    def exec_form(self, keyword: str) -> list[str]:
        """The JSON (exec form) arguments of the runtime stage's last such instruction."""
        arguments = self.runtime.all(keyword)[-1]
        if keyword == "HEALTHCHECK":
            arguments = arguments.split(" CMD ", 1)[1]
        value = json.loads(arguments)
        assert isinstance(value, list), f"{keyword} is not in exec form: {arguments}"
        return value


def _docker_pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex over paths relative to the context."""
    regex = ""
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            regex += "(?:.*/)?"
            index += 3
        elif pattern.startswith("**", index):
            regex += ".*"
            index += 2
        elif pattern[index] == "*":
            regex += "[^/]*"
            index += 1
        elif pattern[index] == "?":
            regex += "[^/]"
            index += 1
        elif pattern[index] == "[":
            end = pattern.index("]", index)
            regex += pattern[index : end + 1]
            index = end + 1
        else:
            regex += re.escape(pattern[index])
            index += 1
    return re.compile(regex)


def dockerignore_excludes(rules: list[str], path: str) -> bool:
    """Whether .dockerignore keeps path (or a folder above it) out of the build context."""
    parents = Path(path).parts
    candidates = ["/".join(parents[: depth + 1]) for depth in range(len(parents))]
    excluded = False
    for rule in rules:
        negated = rule.startswith("!")
        pattern = _docker_pattern(rule.lstrip("!").strip("/"))
        if any(pattern.fullmatch(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


class Baked:
    """One baked project and what its deploy files say, parsed."""

    def __init__(self, path: Path, answers: dict[str, Any]) -> None:
        self.path = path
        self.answers = answers

    def text(self, relative: str) -> str:
        """A baked file's text."""
        return (self.path / relative).read_text(encoding="utf-8")

    def yaml(self, relative: str) -> Any:
        """A baked YAML file, parsed."""
        return yaml.safe_load(self.text(relative))

    @property
    def celery(self) -> bool:
        """Whether the project has the worker process type."""
        return bool(self.answers["worker"] == "celery")

    @cached_property
    def procfile(self) -> dict[str, list[str]]:
        """The Procfile: process type to its command, split as a shell would."""
        return read_procfile(self.path)

    @cached_property
    def dockerfile(self) -> Dockerfile:
        """The parsed Dockerfile."""
        return Dockerfile.parse(self.text("Dockerfile"))

    @cached_property
    def compose(self) -> dict[str, Any]:
        """The parsed docker-compose.yml, anchors merged."""
        return dict(self.yaml("docker-compose.yml"))

    @cached_property
    def env_example(self) -> dict[str, str]:
        """The variables .env.example sets."""
        pairs = (
            line.split("=", 1)
            for line in self.text(".env.example").splitlines()
            if "=" in line and not line.lstrip().startswith("#")
        )
        return {name.strip(): value.strip() for name, value in pairs}

    @cached_property
    def kubernetes_files(self) -> list[Path]:
        """The Kubernetes manifests (not the kustomization files), sorted."""
        root = self.path / "deploy" / "kubernetes"
        return sorted(p for p in root.rglob("*.yaml") if p.name != "kustomization.yaml")

    @cached_property
    def resources(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Every Kubernetes resource in the manifests, by kind and name."""
        found = {}
        for path in self.kubernetes_files:
            for resource in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                found[(resource["kind"], resource["metadata"]["name"])] = resource
        return found

    def resource(self, kind: str, suffix: str) -> dict[str, Any]:
        """The resource of that kind named <slug><suffix>."""
        return self.resources[(kind, f"{self.answers['project_slug']}{suffix}")]

    @cached_property
    def settings(self) -> dict[str, str]:
        """The ConfigMap of plain settings."""
        return dict(self.resource("ConfigMap", "-settings")["data"])

    @cached_property
    def app_routes(self) -> set[str]:
        """The URL paths the baked app's view functions are registered on."""
        routes = set()
        package = self.path / "src" / self.answers["package_name"]
        for source in package.glob("*.py"):
            for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.FunctionDef):
                    continue
                for decorator in node.decorator_list:
                    if (
                        isinstance(decorator, ast.Call)
                        and isinstance(decorator.func, ast.Attribute)
                        and decorator.func.attr in {"get", "route"}
                        and decorator.args
                        and isinstance(decorator.args[0], ast.Constant)
                    ):
                        routes.add(str(decorator.args[0].value))
        return routes


def pod_spec(resource: dict[str, Any]) -> dict[str, Any]:
    """The pod spec of a Deployment or a Job."""
    return dict(resource["spec"]["template"]["spec"])


def only_container(resource: dict[str, Any]) -> dict[str, Any]:
    """The single container of a workload."""
    containers = pod_spec(resource)["containers"]
    assert len(containers) == 1, [c["name"] for c in containers]
    return dict(containers[0])


def compose_seconds(duration: str) -> int:
    """A compose duration such as 30s, 5m or 1m30s, in seconds."""
    units = {"h": 3600, "m": 60, "s": 1}
    parts = re.findall(r"(\d+)([hms])", duration)
    assert "".join(f"{n}{u}" for n, u in parts) == duration, duration
    return sum(int(number) * units[unit] for number, unit in parts)


# ---------------------------------------------------------------------------------------
# Running the validators, once per distinct input
# ---------------------------------------------------------------------------------------


def tool(name: str) -> str:
    """A validator installed beside pytest by `make install`."""
    path = TOOLS_DIR / name
    if not path.exists():
        pytest.fail(
            f"{name} is not installed in {TOOLS_DIR}: run `make install` "
            "(it comes from requirements-dev.lock)",
            pytrace=False,
        )
    return str(path)


def check_jsonschema(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    """Validate one file against one of check-jsonschema's built-in schemas."""
    return subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def content_digest(*paths: Path, root: Path | None = None) -> str:
    """A digest of the files' names (relative to root, else bare) and contents."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path.relative_to(root) if root else path.name).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


class Validators:
    """Runs each validator once per distinct set of file contents."""

    def __init__(self, bakery: Bakery) -> None:
        self._bakery = bakery
        self._results: dict[tuple[Any, ...], subprocess.CompletedProcess[str]] = {}
        self._schema_failures: dict[tuple[str, str], set[str]] = {}

    def run(self, command: list[str], files: list[Path]) -> subprocess.CompletedProcess[str]:
        """Run command with the files appended, or return its result for the same contents."""
        key = (tuple(command), content_digest(*files))
        if key not in self._results:
            self._results[key] = subprocess.run(
                [*command, *(str(path) for path in files)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        return self._results[key]

    def schema(self, schema: str, baked: Baked, relative: str) -> None:
        """Fail with check-jsonschema's words if the baked file breaks the built-in schema.

        The first call checks that file of every combination in one run, since most of
        the time goes into starting the tool and compiling the schema.
        """
        key = (schema, relative)
        command = [tool("check-jsonschema"), "--builtin-schema", schema]
        if key not in self._schema_failures:
            files: dict[str, Path] = {}
            for answers in COMBINATIONS:
                path = self._bakery(answers).path / relative
                if path.is_file():
                    files.setdefault(content_digest(path), path)
            result = subprocess.run(
                [*command, "--output-format", "json", *map(str, files.values())],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            try:
                report = json.loads(result.stdout)
            except ValueError:
                pytest.fail(
                    f"check-jsonschema did not run:\n{result.stdout}{result.stderr}", pytrace=False
                )
            failed = {
                e["filename"] for e in report.get("errors", []) + report.get("parse_errors", [])
            }
            if result.returncode != 0 and not failed:
                pytest.fail(
                    f"check-jsonschema failed:\n{result.stdout}{result.stderr}", pytrace=False
                )
            self._schema_failures[key] = {d for d, path in files.items() if str(path) in failed}
        if content_digest(baked.path / relative) in self._schema_failures[key]:
            # Again on this file alone, for the validator's readable report.
            require_pass(self.run(command, [baked.path / relative]), f"{schema} on {relative}")

    def kustomize(self, kubectl: str, directory: Path, deploy_root: Path) -> str:
        """`kubectl kustomize directory`, once per distinct deploy tree."""
        files = sorted(p for p in deploy_root.rglob("*") if p.is_file())
        key = (
            "kustomize",
            str(directory.relative_to(deploy_root)),
            content_digest(*files, root=deploy_root),
        )
        if key not in self._results:
            self._results[key] = subprocess.run(
                [kubectl, "kustomize", str(directory)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        rendered = self._results[key]
        if rendered.returncode != 0:
            pytest.fail(
                f"kubectl kustomize {directory} failed:\n{rendered.stderr}{rendered.stdout}",
                pytrace=False,
            )
        return rendered.stdout


def require_pass(result: subprocess.CompletedProcess[str], what: str) -> None:
    """Fail with the validator's own words if it did not pass."""
    if result.returncode != 0:
        pytest.fail(f"{what} failed:\n{result.stdout}{result.stderr}", pytrace=False)


def kubernetes_validate(validators: Validators, files: list[Path]) -> str:
    """Validate manifests with --strict; a resource without a schema fails too."""
    command = [tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION]
    result = validators.run(command, files)
    require_pass(result, f"kubernetes-validate --strict -k {KUBERNETES_VERSION}")
    problems = [line for line in result.stdout.splitlines() if not line.startswith("INFO ")]
    if problems:
        pytest.fail("kubernetes-validate:\n" + "\n".join(problems), pytrace=False)
    return result.stdout


# ---------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------


class Bakery:
    """Bakes each combination at most once per session."""

    def __init__(self, cookies: Any) -> None:
        self._cookies = cookies
        self._baked: dict[tuple[tuple[str, str], ...], Baked] = {}

    def __call__(self, answers: dict[str, str]) -> Baked:
        """The session's bake of these answers."""
        key = tuple(sorted(answers.items()))
        if key not in self._baked:
            result = self._cookies.bake(extra_context=answers, template=str(TEMPLATE_DIR))
            if result.exception is not None:
                pytest.fail(f"baking {answers} failed: {result.exception!r}", pytrace=False)
            self._baked[key] = Baked(Path(result.project_path), dict(result.context))
        return self._baked[key]


@pytest.fixture(scope="session")
def bakery(cookies_session: Any) -> Bakery:
    """Bakes combinations, each once per session."""
    return Bakery(cookies_session)


@pytest.fixture(scope="session")
def validators(bakery: Bakery) -> Validators:
    """The session's validator runs, shared by every combination."""
    return Validators(bakery)


@pytest.fixture(params=ALL)
def baked(request: pytest.FixtureRequest, bakery: Bakery) -> Baked:
    """One baked combination: every one, unless a test narrows them with `on(...)`."""
    return bakery(request.param)


def on(params: list[Any]) -> pytest.MarkDecorator:
    """Run a test on these combinations only (those that have the files it checks)."""
    return pytest.mark.parametrize("baked", params, indirect=True)


# ---------------------------------------------------------------------------------------
# Container image
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def hadolint(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """hadolint at its strictest: every rule on, even style and info ones fail.

    An explicit configuration, so that no .hadolint.yaml nearby can switch rules off.
    """
    config = tmp_path_factory.mktemp("hadolint") / "hadolint.yaml"
    config.write_text("ignored: []\nfailure-threshold: style\n")
    return [tool("hadolint"), "--config", str(config), "--no-color", "--failure-threshold", "style"]


def test_dockerfile_passes_hadolint(
    baked: Baked, validators: Validators, hadolint: list[str]
) -> None:
    require_pass(validators.run(hadolint, [baked.path / "Dockerfile"]), "hadolint")
    text = baked.text("Dockerfile")
    for line in text.splitlines():
        ignored = re.search(r"hadolint ignore=(\S+)(.*)", line)
        if ignored:
            assert ignored.group(2).strip(" #-:"), f"ignored rule without a reason: {line}"


def test_image_builds_from_the_chosen_python(baked: Baked) -> None:
    dockerfile = baked.dockerfile
    python = baked.answers["python_version"]
    assert dockerfile.global_args["BASE_IMAGE"] == f"python:{python}-slim"
    assert [stage.base for stage in dockerfile.stages] == ["${BASE_IMAGE}"] * 2
    assert [stage.name for stage in dockerfile.stages] == ["builder", "runtime"]


def test_runtime_stage_gets_only_the_runtime_lock_and_the_wheel(baked: Baked) -> None:
    builder, runtime = baked.dockerfile.stages
    runs = " ".join(builder.all("RUN"))
    installs = re.findall(r"(/opt/\w+)/bin/pip install ([^&]*)", runs)
    into_runtime_venv = [arguments for venv, arguments in installs if venv == "/opt/venv"]
    # The runtime venv: the runtime lock, hash-checked and wheels only, then the wheel.
    assert "--require-hashes" in into_runtime_venv[0]
    assert "--only-binary=:all:" in into_runtime_venv[0]
    assert "--requirement requirements.lock" in into_runtime_venv[0]
    assert into_runtime_venv[1].split() == ["--no-deps", "/build/dist/*.whl"]
    assert len(into_runtime_venv) == 2
    # The build backend comes from the dev lock, into a venv the runtime never sees.
    for venv, arguments in installs:
        assert "--require-hashes" in arguments or "--no-deps" in arguments, arguments
        if "requirements-dev.lock" in arguments:
            assert venv != "/opt/venv"
    assert "pip wheel --no-deps --no-build-isolation" in runs
    assert not re.search(r"(^|\s)(-e|--editable)(\s|$)", runs)
    assert runtime.all("COPY")[0] == "--from=builder /opt/venv /opt/venv"
    assert [c for c in runtime.all("COPY") if "--from" in c] == [runtime.all("COPY")[0]]
    every_run = " ".join(runs.split() + " ".join(runtime.all("RUN")).split())
    for compiler in ("gcc", "build-essential", "apt-get install", "apk add"):
        assert compiler not in every_run


def test_runtime_stage_runs_the_web_process_as_a_numeric_non_root_user(baked: Baked) -> None:
    runtime = baked.dockerfile.runtime
    user = runtime.all("USER")[-1]
    assert re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", user), f"USER {user} is not a numeric UID"
    env = runtime.env()
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["TMPDIR"] == TMPFS
    assert env["RELEASE_ID"] == "${RELEASE_ID}"
    assert "RELEASE_ID=unknown" in runtime.all("ARG")
    assert any("${RELEASE_ID}" in label for label in runtime.all("LABEL"))
    assert baked.dockerfile.exec_form("CMD") == baked.procfile["web"]


def test_healthcheck_asks_healthz_with_python_alone(baked: Baked) -> None:
    command = baked.dockerfile.exec_form("HEALTHCHECK")
    assert command[:2] == ["python", "-c"]
    code = command[2]
    ast.parse(code)
    assert "urllib.request" in code
    assert "'http://127.0.0.1:'" in code
    assert "os.environ.get('PORT', '8000')" in code
    assert "/healthz" in code
    assert "/healthz" in baked.app_routes
    assert not {"curl", "wget"} & set(" ".join(command).split())
    assert baked.dockerfile.runtime.all("EXPOSE") == ["8000"]


def test_dockerignore_keeps_local_files_out_and_what_the_image_copies_in(baked: Baked) -> None:
    rules = [
        line.strip()
        for line in baked.text(".dockerignore").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    package = baked.answers["package_name"]
    kept_out = [
        *LOCAL_ONLY_PATHS,
        ".env.production",
        "tests/test_api.py",
        f"src/{package}/__pycache__/config.cpython-312.pyc",
        "local.db",
        "backup.dump",
        "pgdata/PG_VERSION",
    ]
    assert [path for path in kept_out if not dockerignore_excludes(rules, path)] == []
    copied = []
    for stage in baked.dockerfile.stages:
        for arguments in stage.all("COPY"):
            if not arguments.startswith("--from"):
                copied += shlex.split(arguments)[:-1]
    assert "requirements.lock" in copied
    needed = [*copied, f"src/{package}/__init__.py", "migrations/env.py"]
    assert [path for path in needed if dockerignore_excludes(rules, path.rstrip("/"))] == []


# ---------------------------------------------------------------------------------------
# docker-compose.yml
# ---------------------------------------------------------------------------------------


def test_compose_file_matches_the_compose_spec(baked: Baked, validators: Validators) -> None:
    validators.schema("vendor.compose-spec", baked, "docker-compose.yml")


def test_compose_runs_the_procfile_with_its_backing_services(baked: Baked) -> None:
    services = baked.compose["services"]
    expected = {"db", "migrate", "web"} | ({"redis", "worker"} if baked.celery else set())
    assert set(services) == expected
    assert [name for name, service in services.items() if "container_name" in service] == []
    assert services["migrate"]["command"] == baked.procfile["release"]
    assert services["web"]["command"] == baked.procfile["web"]
    if baked.celery:
        assert services["worker"]["command"] == baked.procfile["worker"]
    app_services = ["migrate", "web", *(["worker"] if baked.celery else [])]
    for name in app_services:
        service = services[name]
        assert service["read_only"] is True
        assert service["tmpfs"] == [TMPFS]
        assert service["depends_on"]["db"] == {"condition": "service_healthy"}
        if name != "migrate":
            condition = {"condition": "service_completed_successfully"}
            assert service["depends_on"]["migrate"] == condition


def test_compose_backing_services_are_healthchecked(baked: Baked) -> None:
    services = baked.compose["services"]
    db = services["db"]
    assert db["image"] == f"postgres:{baked.answers['postgres_version']}"
    assert db["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    volume, _, mount = db["volumes"][0].partition(":")
    assert volume in baked.compose["volumes"]
    assert mount == "/var/lib/postgresql/data"
    if baked.celery:
        assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_compose_reads_settings_from_env_and_points_at_its_services(baked: Baked) -> None:
    services = baked.compose["services"]
    environment = services["web"]["environment"]
    assert re.fullmatch(r"\$\{SECRET_KEY:\?[^}]*make \.env[^}]*\}", environment["SECRET_KEY"])
    assert "@db:5432/" in environment["DATABASE_URL"]
    if baked.celery:
        assert environment["REDIS_URL"].startswith("redis://redis:6379/")
    assert services["web"]["env_file"] == [{"path": ".env", "required": False}]
    port = environment["PORT"]
    assert port == "${PORT:-8000}"
    assert baked.env_example["PORT"] == "8000"
    # No fixed host port per replica: a range (or none), so --scale web=3 can bind.
    for mapping in services["web"]["ports"]:
        parsed = PORT_MAPPING.fullmatch(str(mapping))
        assert parsed, mapping
        assert parsed["container"] == port
        assert parsed["host"] is None or re.fullmatch(r"\d+-\d+", parsed["host"]), mapping


# After SIGTERM a worker with a stuck task exits this long after TASK_TIME_LIMIT at most: the
# baked tests/test_worker.py sees about two seconds (the kill, then the pool and broker stop).
WORKER_STOP_SECONDS = 10


def test_compose_stop_grace_periods_outlast_the_shutdown_timeouts(baked: Baked) -> None:
    services = baked.compose["services"]
    drain = int(baked.env_example["DRAIN_SECONDS"])
    graceful = int(baked.env_example["GRACEFUL_TIMEOUT"])
    assert compose_seconds(services["web"]["stop_grace_period"]) > drain + graceful
    if baked.celery:
        soft_limit = int(baked.env_example["TASK_SOFT_TIME_LIMIT"])
        time_limit = int(baked.env_example["TASK_TIME_LIMIT"])
        assert soft_limit < time_limit
        grace = compose_seconds(services["worker"]["stop_grace_period"])
        assert grace > time_limit + WORKER_STOP_SECONDS


def test_compose_worker_is_checked_by_asking_the_worker_not_the_web_port(baked: Baked) -> None:
    if not baked.celery:
        assert "worker" not in baked.compose["services"]
        return
    check = baked.compose["services"]["worker"]["healthcheck"]
    kind, command = check["test"]
    assert kind == "CMD-SHELL"
    words = shlex.split(command)
    assert words[: len(baked.procfile["worker"][:3])] == baked.procfile["worker"][:3]
    assert words[3:5] == ["inspect", "ping"]
    assert "/healthz" not in command


# ---------------------------------------------------------------------------------------
# Kubernetes
# ---------------------------------------------------------------------------------------


def test_kubernetes_manifests_exist_only_when_chosen(baked: Baked) -> None:
    deploy = baked.path / "deploy"
    if baked.answers["kubernetes"] == "yes":
        assert (deploy / "kubernetes" / "base" / "kustomization.yaml").is_file()
        worker = deploy / "kubernetes" / "base" / "worker-deployment.yaml"
        assert worker.exists() == baked.celery
    else:
        assert not deploy.exists()


@on(WITH_KUBERNETES)
def test_kubernetes_manifests_pass_strict_validation(baked: Baked, validators: Validators) -> None:
    output = kubernetes_validate(validators, baked.kubernetes_files)
    assert output.count(" passed for resource ") == len(baked.resources)


@on(WITH_KUBERNETES)
def test_every_manifest_is_in_a_kustomization_and_every_entry_exists(baked: Baked) -> None:
    root = baked.path / "deploy" / "kubernetes"

    def listed(directory: Path) -> Iterator[Path]:
        kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
        for entry in kustomization.get("resources", []):
            target = (directory / entry).resolve()
            assert target.exists(), f"{directory / 'kustomization.yaml'} lists missing {entry}"
            if target.is_dir():
                yield from listed(target)
            else:
                yield target

    in_base = sorted(listed(root / "base"))
    assert in_base == sorted(
        p.resolve() for p in (root / "base").rglob("*.yaml") if p.name != "kustomization.yaml"
    )
    assert (root / "secret.example.yaml").resolve() not in in_base


@on(WITH_KUBERNETES)
def test_kustomize_overlays_render_and_pass_strict_validation(
    baked: Baked, validators: Validators, tmp_path: Path
) -> None:
    root = baked.path / "deploy" / "kubernetes"
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip(
            "kubectl is not on PATH, so the kustomize overlays are not rendered; "
            "the base manifests are still validated file by file"
        )
    slug = baked.answers["project_slug"]
    rendered_files = []
    for overlay in ("overlays/example", "overlays/example/release"):
        rendered = validators.kustomize(kubectl, root / overlay, root)
        resources = list(yaml.safe_load_all(rendered))
        images = {
            c["image"]
            for r in resources
            if "template" in r.get("spec", {})
            for c in pod_spec(r)["containers"]
        }
        assert images == {f"registry.example.com/{slug}:{baked.answers['version']}"}
        path = tmp_path / (overlay.replace("/", "-") + ".yaml")
        path.write_text(rendered)
        rendered_files.append(path)
        kinds = sorted(r["kind"] for r in resources)
        if overlay.endswith("release"):
            assert kinds == ["ConfigMap", "Job"]
        else:
            assert "Job" in kinds
            assert "Deployment" in kinds
    kubernetes_validate(validators, rendered_files)


@on(WITH_KUBERNETES)
def test_web_deployment_probes_and_drains(baked: Baked) -> None:
    deployment = baked.resource("Deployment", "-web")
    container = only_container(deployment)
    assert container["command"] == baked.procfile["web"]
    port = container["ports"][0]
    assert port == {"name": "http", "containerPort": int(baked.settings["PORT"])}
    probes = {
        kind: container[f"{kind}Probe"]["httpGet"] for kind in ("startup", "liveness", "readiness")
    }
    assert probes["liveness"]["path"] == "/healthz"
    assert probes["readiness"]["path"] == "/readyz"
    assert {probe["port"] for probe in probes.values()} == {"http"}
    missing = {probe["path"] for probe in probes.values()} - baked.app_routes
    assert missing == set(), f"probe paths the app does not serve: {missing}"
    # The web process drains by itself on SIGTERM (/readyz 503 while it serves), so a
    # preStop pause would only add to the time a pod takes to stop.
    assert "lifecycle" not in container
    drain = int(baked.settings["DRAIN_SECONDS"])
    readiness = container["readinessProbe"]
    assert readiness["periodSeconds"] * readiness["failureThreshold"] < drain, (
        "the pod must fail its readiness probe, and leave the Service, within the drain"
    )
    graceful = int(baked.settings["GRACEFUL_TIMEOUT"])
    assert pod_spec(deployment)["terminationGracePeriodSeconds"] > drain + graceful
    assert "replicas" not in deployment["spec"], "the HorizontalPodAutoscaler owns replicas"


def _check_hardened(workload: dict[str, Any], uid: str) -> None:
    """Non-root with the image's UID, read-only root, a memory emptyDir at /tmp, limits."""
    spec = pod_spec(workload)
    container = only_container(workload)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert str(spec["securityContext"]["runAsUser"]) == uid
    assert spec["automountServiceAccountToken"] is False
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    assert volumes[mounts[TMPFS]]["emptyDir"]["medium"] == "Memory"
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) == {"cpu", "memory"}
    env_from = [
        source.get("configMapRef", source.get("secretRef"))["name"]
        for source in container["envFrom"]
    ]
    slug = workload["metadata"]["labels"]["app.kubernetes.io/name"]
    assert env_from == [f"{slug}-settings", f"{slug}-secrets"]


@on(WITH_KUBERNETES)
def test_every_workload_is_hardened_like_the_image(baked: Baked) -> None:
    uid = baked.dockerfile.runtime.all("USER")[-1].split(":")[0]
    workloads = [r for (kind, _), r in baked.resources.items() if kind in {"Deployment", "Job"}]
    assert len(workloads) == (3 if baked.celery else 2)
    for workload in workloads:
        _check_hardened(workload, uid)


@on(WITH_KUBERNETES)
def test_migration_job_runs_the_release_command(baked: Baked) -> None:
    job = baked.resource("Job", "-migrate")
    assert only_container(job)["command"] == baked.procfile["release"]
    assert pod_spec(job)["restartPolicy"] == "Never"


@on(combinations_with(kubernetes="yes", worker="celery"))
def test_worker_deployment_outlasts_the_task_time_limit(baked: Baked) -> None:
    worker = baked.resource("Deployment", "-worker")
    assert only_container(worker)["command"] == baked.procfile["worker"]
    soft_limit = int(baked.settings["TASK_SOFT_TIME_LIMIT"])
    time_limit = int(baked.settings["TASK_TIME_LIMIT"])
    assert soft_limit < time_limit
    grace = pod_spec(worker)["terminationGracePeriodSeconds"]
    assert grace > time_limit + WORKER_STOP_SECONDS


@on(WITH_KUBERNETES)
def test_service_autoscaler_and_budget_target_the_web_pods(baked: Baked) -> None:
    deployment = baked.resource("Deployment", "-web")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == pod_labels
    service = baked.resource("Service", "-web")
    assert service["spec"]["selector"] == pod_labels
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    hpa = baked.resource("HorizontalPodAutoscaler", "-web")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert 1 < hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    pdb = baked.resource("PodDisruptionBudget", "-web")
    assert pdb["spec"]["selector"]["matchLabels"] == pod_labels
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]


@on(WITH_KUBERNETES)
def test_configmap_and_secret_hold_every_setting_and_no_real_secret(baked: Baked) -> None:
    secret = baked.resource("Secret", "-secrets")
    secret_names = {"DATABASE_URL", "SECRET_KEY", *(["REDIS_URL"] if baked.celery else [])}
    assert set(secret["stringData"]) == secret_names
    assert all("replace-me" in value for value in secret["stringData"].values())
    assert "kubectl create secret generic" in baked.text("deploy/kubernetes/secret.example.yaml")
    plain = set(baked.env_example) - secret_names - {"RELEASE_ID"}
    assert set(baked.settings) == plain
    assert set(baked.settings) & secret_names == set()


# ---------------------------------------------------------------------------------------
# CI
# ---------------------------------------------------------------------------------------


def test_ci_files_are_those_of_the_chosen_system(baked: Baked) -> None:
    github = (baked.path / ".github").exists()
    gitlab = (baked.path / ".gitlab-ci.yml").exists()
    assert (github, gitlab) == {
        "github": (True, False),
        "gitlab": (False, True),
        "none": (False, False),
    }[baked.answers["ci"]]


@on(WITH_GITHUB)
def test_github_workflow_matches_its_schema(baked: Baked, validators: Validators) -> None:
    for schema in ("vendor.github-workflows", "custom.github-workflows-require-timeout"):
        validators.schema(schema, baked, ".github/workflows/ci.yml")


@on(WITH_GITHUB)
def test_github_workflow_lints_audits_tests_and_builds_the_image(baked: Baked) -> None:
    workflow = baked.yaml(".github/workflows/ci.yml")
    jobs = workflow["jobs"]
    runs = {name: [step.get("run", "") for step in job["steps"]] for name, job in jobs.items()}
    assert "make lint" in runs["lint"]
    assert "make audit" in runs["audit"]
    # PyYAML reads the bare key `on` as True.
    assert workflow[True]["schedule"], "the audit also runs on a schedule, for new advisories"
    assert "make test" in runs["test"]
    build = " ".join(runs["build-image"])
    assert "docker build" in build
    assert "push" not in build
    for name, job in jobs.items():
        actions = [step["uses"] for step in job["steps"] if "uses" in step]
        for action in actions:
            owner_name, _, version = action.partition("@")
            minimum = {"actions/checkout": 4, "actions/setup-python": 5}
            assert owner_name in minimum, f"{name} uses {action}: only the official actions"
            assert int(version.removeprefix("v").split(".")[0]) >= minimum[owner_name], action
        if "actions/setup-python" in " ".join(actions):
            setup = next(
                s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python")
            )
            assert setup["with"]["python-version"] == baked.answers["python_version"]
            assert any(re.search(r"pip install \"uv[>=<,.\d]*\"", run) for run in runs[name])


@on(WITH_GITHUB)
def test_github_workflow_tests_against_the_chosen_services(baked: Baked) -> None:
    test = baked.yaml(".github/workflows/ci.yml")["jobs"]["test"]
    images = {name: service["image"] for name, service in test["services"].items()}
    postgres = f"postgres:{baked.answers['postgres_version']}"
    expected = {"db": postgres, **({"redis": "redis:8"} if baked.celery else {})}
    assert images == expected
    assert test["services"]["db"]["ports"] == ["5432:5432"]
    assert test["env"]["TEST_DATABASE_URL"] == "postgresql://postgres@127.0.0.1:5432/postgres"
    if baked.celery:
        assert test["services"]["redis"]["ports"] == ["6379:6379"]
        assert "redis-cli ping" in test["services"]["redis"]["options"]


@on(WITH_GITLAB)
def test_gitlab_ci_matches_its_schema_and_runs_the_same_jobs(
    baked: Baked, validators: Validators
) -> None:
    validators.schema("vendor.gitlab-ci", baked, ".gitlab-ci.yml")
    pipeline = baked.yaml(".gitlab-ci.yml")
    assert pipeline["stages"] == ["check", "build"]
    python = pipeline[".python"]
    assert python["image"] == f"python:{baked.answers['python_version']}"
    assert any(re.search(r"pip install \"uv[>=<,.\d]*\"", line) for line in python["before_script"])
    assert pipeline["lint"]["extends"] == pipeline["test"]["extends"] == ".python"
    assert pipeline["lint"]["script"] == ["make lint"]
    assert pipeline["audit"]["extends"] == ".python"
    assert pipeline["audit"]["script"] == ["make audit"]
    assert pipeline["test"]["script"] == ["make test"]
    build = " ".join(pipeline["build-image"]["script"])
    assert "docker build" in build
    assert "push" not in build
    services = {s["alias"]: s["name"] for s in pipeline["test"]["services"]}
    postgres = f"postgres:{baked.answers['postgres_version']}"
    assert services == {"db": postgres, **({"redis": "redis:8"} if baked.celery else {})}
    variables = pipeline["test"]["variables"]
    assert variables["TEST_DATABASE_URL"] == "postgresql://postgres@db:5432/postgres"
    if baked.celery:
        # No database number: each parallel test process then takes a database of its own.
        assert variables["TEST_REDIS_URL"] == "redis://redis:6379"


# ---------------------------------------------------------------------------------------
# Parity across files
# ---------------------------------------------------------------------------------------


def test_one_postgres_version_in_compose_ci_and_readme(baked: Baked) -> None:
    version = baked.answers["postgres_version"]
    found = {"docker-compose.yml": {baked.compose["services"]["db"]["image"].split(":")[1]}}
    readme = baked.text("README.md")
    found["README.md"] = set(re.findall(r"\bPostgreSQL (\d+)\b", readme))
    if baked.answers["ci"] == "github":
        test = baked.yaml(".github/workflows/ci.yml")["jobs"]["test"]
        found["ci.yml"] = {test["services"]["db"]["image"].split(":")[1]}
    if baked.answers["ci"] == "gitlab":
        services = baked.yaml(".gitlab-ci.yml")["test"]["services"]
        found[".gitlab-ci.yml"] = {s["name"].split(":")[1] for s in services if s["alias"] == "db"}
    assert found == {where: {version} for where in found}


def test_one_python_version_in_dockerfile_ci_and_requires_python(baked: Baked) -> None:
    version = baked.answers["python_version"]
    requires_python = tomllib.loads(baked.text("pyproject.toml"))["project"]["requires-python"]
    base_image = baked.dockerfile.global_args["BASE_IMAGE"]
    found = {
        "Dockerfile": base_image.removeprefix("python:").removesuffix("-slim"),
        "requires-python": requires_python.removeprefix(">="),
    }
    if baked.answers["ci"] == "github":
        for name, job in baked.yaml(".github/workflows/ci.yml")["jobs"].items():
            for step in job["steps"]:
                if step.get("uses", "").startswith("actions/setup-python"):
                    found[f"ci.yml {name}"] = step["with"]["python-version"]
    if baked.answers["ci"] == "gitlab":
        found[".gitlab-ci.yml"] = baked.yaml(".gitlab-ci.yml")[".python"]["image"].removeprefix(
            "python:"
        )
    assert found == dict.fromkeys(found, version)


@on(combinations_with(worker="celery"))
def test_one_redis_image_in_compose_and_ci(baked: Baked) -> None:
    found = {"docker-compose.yml": baked.compose["services"]["redis"]["image"]}
    if baked.answers["ci"] == "github":
        test = baked.yaml(".github/workflows/ci.yml")["jobs"]["test"]
        found["ci.yml"] = test["services"]["redis"]["image"]
    if baked.answers["ci"] == "gitlab":
        services = baked.yaml(".gitlab-ci.yml")["test"]["services"]
        found[".gitlab-ci.yml"] = next(s["name"] for s in services if s["alias"] == "redis")
    assert len(set(found.values())) == 1, found


def test_process_commands_are_the_procfiles_everywhere(baked: Baked) -> None:
    services = baked.compose["services"]
    started = {
        "Dockerfile CMD": ("web", baked.dockerfile.exec_form("CMD")),
        "compose web": ("web", services["web"]["command"]),
        "compose migrate": ("release", services["migrate"]["command"]),
    }
    if baked.celery:
        started["compose worker"] = ("worker", services["worker"]["command"])
    if baked.answers["kubernetes"] == "yes":
        started["Deployment web"] = (
            "web",
            only_container(baked.resource("Deployment", "-web"))["command"],
        )
        started["Job migrate"] = (
            "release",
            only_container(baked.resource("Job", "-migrate"))["command"],
        )
        if baked.celery:
            worker = baked.resource("Deployment", "-worker")
            started["Deployment worker"] = ("worker", only_container(worker)["command"])
    differing = {
        where: command
        for where, (process, command) in started.items()
        if command != baked.procfile[process]
    }
    assert differing == {}, f"Procfile: {baked.procfile}"
    assert set(baked.procfile) == {"web", "release", *(["worker"] if baked.celery else [])}


# ---------------------------------------------------------------------------------------
# The validators do reject broken files
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_bake(bakery: Bakery) -> Baked:
    """The project with the default answers and the worker, for the broken-file tests."""
    return bakery({"worker": "celery"})


def test_hadolint_rejects_a_dockerfile_with_an_unpinned_apt_install(
    default_bake: Baked, tmp_path: Path, hadolint: list[str]
) -> None:
    broken = tmp_path / "Dockerfile"
    text = default_bake.text("Dockerfile")
    broken.write_text(
        text.replace("USER 10001:10001", "RUN apt-get update && apt-get install -y curl\nUSER app")
    )
    result = subprocess.run(
        [*hadolint, str(broken)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "DL3008" in result.stdout  # apt-get install without pinned versions
    assert "DL3015" in result.stdout  # ... and without --no-install-recommends


def test_compose_spec_rejects_an_unknown_service_key(default_bake: Baked, tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    text = default_bake.text("docker-compose.yml")
    broken.write_text(text.replace("    stop_grace_period: 30s", "    stop_grace: 30s", 1))
    result = check_jsonschema("vendor.compose-spec", broken)
    assert result.returncode != 0
    assert "'stop_grace' was unexpected" in result.stdout


def test_kubernetes_validate_rejects_an_unknown_field_only_when_strict(
    default_bake: Baked, tmp_path: Path
) -> None:
    broken = tmp_path / "web-deployment.yaml"
    text = default_bake.text("deploy/kubernetes/base/web-deployment.yaml")
    broken.write_text(text.replace("          readinessProbe:", "          readynessProbe:"))
    command = [tool("kubernetes-validate"), "-k", KUBERNETES_VERSION]
    lenient = subprocess.run([*command, str(broken)], capture_output=True, text=True, check=False)
    assert lenient.returncode == 0, "without --strict an unknown field passes unseen"
    strict = subprocess.run(
        [*command, "--strict", str(broken)], capture_output=True, text=True, check=False
    )
    assert strict.returncode != 0
    assert "readynessProbe" in strict.stdout


def test_kubernetes_validate_catches_an_api_version_without_a_schema(
    default_bake: Baked, tmp_path: Path, validators: Validators
) -> None:
    broken = tmp_path / "web-hpa.yaml"
    text = default_bake.text("deploy/kubernetes/base/web-hpa.yaml")
    broken.write_text(text.replace("autoscaling/v2", "autoscaling/v3"))
    with pytest.raises(pytest.fail.Exception, match="Couldn't find schema"):
        kubernetes_validate(validators, [broken])


def test_github_workflows_schema_rejects_a_job_without_runs_on(
    default_bake: Baked, tmp_path: Path
) -> None:
    broken = tmp_path / "ci.yml"
    text = default_bake.text(".github/workflows/ci.yml")
    broken.write_text(
        text.replace("    runs-on: ubuntu-latest\n", "    runs_on: ubuntu-latest\n", 1)
    )
    result = check_jsonschema("vendor.github-workflows", broken)
    assert result.returncode != 0
    assert "$.jobs.lint" in result.stdout


def test_gitlab_ci_schema_rejects_a_misspelt_keyword(bakery: Bakery, tmp_path: Path) -> None:
    broken = tmp_path / ".gitlab-ci.yml"
    text = bakery({"ci": "gitlab"}).text(".gitlab-ci.yml")
    broken.write_text(text.replace("  script:\n    - make lint", "  scripts:\n    - make lint"))
    result = check_jsonschema("vendor.gitlab-ci", broken)
    assert result.returncode != 0
    assert "'scripts' was unexpected" in result.stdout
