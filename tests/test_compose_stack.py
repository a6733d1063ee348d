"""The baked compose file brought up for real: `docker compose up`, scale, `down -v`.

The baked `docker-compose.yml` is used as written, with one override file beside it that
only does what these machines need: the official postgres and redis images (which no
registry here can serve) are swapped for the Debian-made stand-ins of containers.py, the
build gets the stand-in Python base and the host's network for reaching the package
registry, and the web's and worker's health checks are asked every second or two instead
of every 30 s.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import no_engine
from containers import STANDIN_PYTHON, Engine, NoEngineError, http, run, said, wait_until
from template import TEMPLATE_DIR

pytestmark = pytest.mark.containers

VARIANTS = [pytest.param("none", id="default"), pytest.param("celery", id="celery")]
APP_SERVICES = ("migrate", "web", "worker")
# Variables of the caller's shell that the compose file would otherwise pick up.
INTERPOLATED = ("PORT", "POSTGRES_PASSWORD", "SECRET_KEY", "RELEASE_ID", "COMPOSE_FILE")


@dataclass
class Stack:
    """A compose project of a baked service on the engine, and how to drive it."""

    engine: Engine
    project: Path
    name: str
    override: Path
    env: dict[str, str]
    celery: bool

    def compose(self, *arguments: str, timeout: float = 900) -> str:
        """Run docker compose on the baked file and the override; fail with its output."""
        command = [
            *self.engine.compose(),
            "--project-name",
            self.name,
            "--file",
            str(self.project / "docker-compose.yml"),
            "--file",
            str(self.override),
            *arguments,
        ]
        result = run(command, env=self.env, timeout=timeout)
        assert result.returncode == 0, f"`{' '.join(arguments)}` failed:\n{said(result)}"
        return result.stdout

    def services(self) -> list[dict[str, Any]]:
        """Every container of the project, as `docker compose ps --all` describes it."""
        text = self.compose("ps", "--all", "--format", "json").strip()
        if text.startswith("["):
            return list(json.loads(text))
        return [json.loads(line) for line in text.splitlines() if line]

    def web_urls(self) -> list[str]:
        """The base URL of each web replica, through the ports compose published."""
        replicas = [service for service in self.services() if service["Service"] == "web"]
        urls = []
        for index in range(1, len(replicas) + 1):
            address = self.compose("port", "--index", str(index), "web", "8000").strip()
            urls.append(f"http://{address}")
        return urls

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, volumes and networks still labelled with the project's name."""
        label = f"label=com.docker.compose.project={self.name}"
        found = {}
        for kind, listing in (("container", ["ps", "--all"]), ("volume", ["volume", "ls"])):
            found[kind] = self.engine.must(*listing, "--quiet", "--filter", label).split()
        found["network"] = self.engine.must("network", "ls", "--quiet", "--filter", label).split()
        return found


def override_file(folder: Path, engine: Engine, celery: bool) -> Path:
    """The one file laid over the baked compose file: stand-in images and a local build."""
    base = engine.python_base()
    build = {"network": "host", "args": {"BASE_IMAGE": base}}
    services: dict[str, Any] = {
        "db": {"image": engine.postgres_standin()},
        "migrate": {"build": build},
        "web": {"build": build, "healthcheck": {"interval": "1s"}},
    }
    if celery:
        services["redis"] = {"image": engine.redis_standin()}
        services["worker"] = {"build": build, "healthcheck": {"interval": "2s"}}
    path = folder / "compose.standins.yml"
    path.write_text(yaml.safe_dump({"services": services}, sort_keys=False))
    return path


@pytest.fixture(scope="module", params=VARIANTS)
def stack(
    request: pytest.FixtureRequest,
    engine: Engine,
    cookies_session: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """The variant's stack, up and healthy; taken down with its volumes at the end."""
    worker = request.param
    answers = {"python_version": STANDIN_PYTHON, "worker": worker}
    baked = cookies_session.bake(extra_context=answers, template=str(TEMPLATE_DIR))
    if baked.exception is not None:
        pytest.fail(f"baking {answers} failed: {baked.exception!r}", pytrace=False)
    try:
        engine.compose()  # fetched now, so a missing Compose skips rather than fails
        override = override_file(tmp_path_factory.mktemp("compose"), engine, worker == "celery")
    except NoEngineError as reason:
        no_engine(reason)
    env = {name: value for name, value in engine.env.items() if name not in INTERPOLATED}
    env.update(
        SECRET_KEY=secrets.token_urlsafe(32),
        POSTGRES_PASSWORD=secrets.token_urlsafe(16),
        RELEASE_ID=f"compose-{worker}",
        # The classic builder shares its layer cache with the image tests' builds.
        DOCKER_BUILDKIT="0",
    )
    name = f"template-{worker}-{uuid.uuid4().hex[:8]}"
    running = Stack(engine, Path(baked.project_path), name, override, env, worker == "celery")
    try:
        running.compose("up", "--build", "--wait", timeout=1200)
        yield running
    finally:
        running.compose("down", "--volumes", "--remove-orphans")


def test_the_baked_compose_file_is_accepted_as_written(stack: Stack) -> None:
    result = run(
        [*stack.engine.compose(), "--file", str(stack.project / "docker-compose.yml"), "config"],
        env=stack.env,
    )
    assert result.returncode == 0, said(result)
    services = yaml.safe_load(result.stdout)["services"]
    assert services["db"]["image"].startswith("postgres:")


def test_up_waits_for_the_database_the_release_and_a_healthy_web(stack: Stack) -> None:
    state = {service["Service"]: service for service in stack.services()}
    assert state["db"]["Health"] == "healthy"
    assert state["migrate"]["State"] == "exited"
    assert state["migrate"]["ExitCode"] == 0
    assert state["web"]["Health"] == "healthy"
    if stack.celery:
        assert state["redis"]["Health"] == "healthy"
        assert state["worker"]["State"] == "running"


def test_the_web_answers_through_its_published_port(stack: Stack) -> None:
    (base,) = stack.web_urls()
    status, ready = http("GET", f"{base}/readyz")
    assert status == 200, ready
    assert set(ready["checks"]) == ({"database", "redis"} if stack.celery else {"database"})
    assert http("GET", f"{base}/version")[1]["release"] == stack.env["RELEASE_ID"]
    status, todo = http("POST", f"{base}/api/todos", {"title": "made through compose"})
    assert status == 201, todo
    assert http("GET", f"{base}/api/todos/{todo['id']}") == (200, todo)
    if stack.celery:
        assert http("POST", f"{base}/api/todos/{todo['id']}/archive")[0] == 202
        wait_until(
            lambda: http("GET", f"{base}/api/todos/{todo['id']}")[1]["archived_at"] is not None,
            "the worker service to archive the todo",
        )


def test_scaling_web_to_two_gives_two_answering_replicas(stack: Stack) -> None:
    stack.compose("up", "--wait", "--scale", "web=2", timeout=600)
    urls = stack.web_urls()
    assert len(set(urls)) == 2, urls
    for base in urls:
        assert http("GET", f"{base}/readyz")[0] == 200


def test_down_with_volumes_leaves_nothing_behind(stack: Stack) -> None:
    assert stack.leftovers()["volume"], "the stack should have made its database volume"
    stack.compose("down", "--volumes", "--remove-orphans")
    assert stack.leftovers() == {"container": [], "volume": [], "network": []}
