"""The combinations of answers that shape deploy files, and each one's baked files, parsed.

Each combination is baked once per session (by `Bakery`, behind the `bakery` fixture) and
read through `Baked`.
"""

from __future__ import annotations

import ast
import itertools
import json
import re
import shlex
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest
import yaml

from baking import read_procfile
from template import TEMPLATE_DIR, choices

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
# The observability option touches compose, Kubernetes, .env.example, the README and CI: each
# worker with both CI systems on Kubernetes, then compose alone (no deploy/ folder).
COMBINATIONS += [
    {"observability": "opentelemetry", "ci": ci, "worker": worker}
    for worker in choices("worker")
    for ci in ("github", "gitlab")
] + [{"observability": "opentelemetry", "ci": "none", "kubernetes": "no", "worker": "celery"}]

# Where the containers' temporary files go: a tmpfs or a memory emptyDir, never the image.
TMPFS = "/tmp"  # noqa: S108 - a path inside the containers, not a file of ours
# After SIGTERM a worker with a stuck task exits this long after TASK_TIME_LIMIT at most: the
# baked tests/task_queue/test_worker.py sees about two seconds (the kill, then the pool and
# broker stop).
WORKER_STOP_SECONDS = 10


def answer(answers: dict[str, str], question: str) -> str:
    """The answer given, or the question's default."""
    return answers.get(question, choices(question)[0])


def combination_id(answers: dict[str, str]) -> str:
    """A readable test id, e.g. github-k8s-celery-pg17, with -py3.13 for another Python
    and -otel for the observability option."""
    kubernetes = "k8s" if answer(answers, "kubernetes") == "yes" else "nok8s"
    parts = [answer(answers, "ci"), kubernetes, answer(answers, "worker")]
    parts.append(f"pg{answer(answers, 'postgres_version')}")
    if "python_version" in answers:
        parts.append(f"py{answers['python_version']}")
    if answer(answers, "observability") == "opentelemetry":
        parts.append("otel")
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
WITH_OBSERVABILITY = combinations_with(observability="opentelemetry")
WITHOUT_OBSERVABILITY = combinations_with(observability="none")


def on(params: list[Any]) -> pytest.MarkDecorator:
    """Run a test on these combinations only (those that have the files it checks)."""
    return pytest.mark.parametrize("baked", params, indirect=True)


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

    @property
    def observability(self) -> bool:
        """Whether the project has traces, metrics and error reports."""
        return bool(self.answers["observability"] == "opentelemetry")

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
    def setting_defaults(self) -> dict[str, str]:
        """The defaults of the service's Settings in config.py, by environment variable."""
        config = self.path / "src" / self.answers["package_name"] / "config.py"
        defaults = {}
        for node in ast.walk(ast.parse(config.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.ClassDef) and node.name == "Settings"):
                continue
            for field in node.body:
                if not (isinstance(field, ast.AnnAssign) and isinstance(field.target, ast.Name)):
                    continue
                value = field.value
                if isinstance(value, ast.Call):
                    value = next((k.value for k in value.keywords if k.arg == "default"), None)
                if isinstance(value, ast.Constant):
                    defaults[field.target.id.upper()] = str(value.value)
        return defaults

    def stop_seconds(self, overrides: dict[str, str]) -> int:
        """DRAIN_SECONDS + GRACEFUL_TIMEOUT, as set by overrides or else config.py's defaults:
        how long a web process may take to stop after SIGTERM, before any SIGKILL."""
        values = {**self.setting_defaults, **overrides}
        return int(values["DRAIN_SECONDS"]) + int(values["GRACEFUL_TIMEOUT"])

    @cached_property
    def app_routes(self) -> set[str]:
        """The URL paths the baked app's view functions are registered on."""
        routes = set()
        package = self.path / "src" / self.answers["package_name"]
        for source in package.rglob("*.py"):
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
# Baking each combination once per session
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
