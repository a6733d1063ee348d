"""The baked image, built from the unchanged Dockerfile and run on a real engine.

What a user does with a new project: `docker build .`, the `release` line as a one-off
container, the `web` line with a read-only root filesystem, `docker stop`; with celery,
worker containers. The base image is the Debian-made stand-in for python:3.13-slim (see
containers.py), so the bakes choose Python 3.13; the database and Redis are the host's,
reached through the host's network.
"""

from __future__ import annotations

import html
import json
import re
import secrets
import socket
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from packaging.markers import Marker
from packaging.utils import canonicalize_name

from baking import read_procfile
from conftest import no_engine
from containers import STANDIN_PYTHON, Engine, NoEngineError, http, said, wait_until
from template import TEMPLATE_DIR

pytestmark = pytest.mark.containers

VARIANTS = [pytest.param("none", id="default"), pytest.param("celery", id="celery")]
RELEASE_ID = "image-test-release"
# The marker env of packaging, computed by the image's own Python.
MARKER_ENVIRONMENT_SCRIPT = """
import json, os, platform, sys
print(json.dumps({
    "implementation_name": sys.implementation.name,
    "implementation_version": platform.python_version(),
    "os_name": os.name,
    "platform_machine": platform.machine(),
    "platform_release": platform.release(),
    "platform_system": platform.system(),
    "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "platform_python_implementation": platform.python_implementation(),
    "python_version": ".".join(platform.python_version_tuple()[:2]),
    "sys_platform": sys.platform,
}))
"""
PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)\s*(?:;(?P<marker>[^\\]+))?"
)
# Where the containers' temporary files go: a tmpfs, never the image.
TMPFS = "/tmp"  # noqa: S108 - a path inside the containers, not a file of ours
COMPILERS = ("gcc", "cc", "c++", "g++", "clang", "make", "x86_64-linux-gnu-gcc")
# What each image may weigh on the stand-in base (MB as docker counts them, 10**6 bytes).
SIZE_BUDGET_MB = {"none": 200, "celery": 220}
RUNTIME_VENV_PYTHON = "/opt/venv/bin/python"
SBOM_IN_IMAGE = "/app/sbom.cdx.json"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def locked_pins(lock: Path, environment: dict[str, str]) -> dict[str, str]:
    """The lock's exact versions that apply in an environment, by canonical name."""
    pins = {}
    for line in lock.read_text().splitlines():
        match = PIN.match(line)
        if match is None:
            continue
        marker = match["marker"]
        if marker and not Marker(marker.strip()).evaluate(environment):
            continue
        pins[canonicalize_name(match["name"])] = match["version"]
    return pins


def fetched(url: str, timeout: float = 10) -> tuple[int, bytes]:
    """One GET; the status and the body as it came."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http only
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def flush_redis(url: str) -> None:
    """Empty a Redis server that only these tests use."""
    host_port = url.removeprefix("redis://").split("/", 1)[0]
    host, _, port = host_port.partition(":")
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(b"*1\r\n$8\r\nFLUSHALL\r\n")
        assert connection.recv(64).startswith(b"+OK"), "FLUSHALL was refused"


@dataclass
class BuiltImage:
    """A baked project, its image, and a database of its own on the host's PostgreSQL."""

    engine: Engine
    project: Path
    tag: str
    worker: str
    database_url: str
    env_secret: str
    redis_url: str = ""
    started: list[str] = field(default_factory=list)

    @property
    def processes(self) -> dict[str, list[str]]:
        """The Procfile of the baked project."""
        return read_procfile(self.project)

    def environment(self, **overrides: str) -> dict[str, str]:
        """The settings a platform would give the containers."""
        settings = {
            "DATABASE_URL": self.database_url,
            "SECRET_KEY": secrets.token_urlsafe(32),
            "LOG_LEVEL": "INFO",
        }
        if self.worker == "celery":
            settings["REDIS_URL"] = self.redis_url
        return {**settings, **overrides}

    def run_arguments(self, name: str, settings: dict[str, str]) -> list[str]:
        """`docker run` options as production would give them: read-only, a tmpfs, host net."""
        options = ["--name", name, "--network=host", "--read-only", "--tmpfs", TMPFS]
        for key, value in settings.items():
            options += ["--env", f"{key}={value}"]
        return options

    def one_off(self, process: str, **overrides: str) -> subprocess.CompletedProcess[str]:
        """Run a Procfile line as a one-off container, removed when it ends."""
        name = f"oneoff-{uuid.uuid4().hex[:8]}"
        arguments = self.run_arguments(name, self.environment(**overrides))
        return self.engine.docker("run", "--rm", *arguments, self.tag, *self.processes[process])

    def start(self, process: str, *extra: str, **overrides: str) -> str:
        """Start a Procfile line in a detached container; it is removed at the end."""
        name = f"{process}-{uuid.uuid4().hex[:8]}"
        command = [] if process == "web" else self.processes[process]
        arguments = self.run_arguments(name, self.environment(**overrides))
        self.started.append(name)
        self.engine.must("run", "--detach", *arguments, *extra, self.tag, *command)
        return name

    def start_web(self, *extra: str, **overrides: str) -> tuple[str, str]:
        """Start the image's default command (the web line) and wait for /healthz."""
        port = free_port()
        name = self.start("web", *extra, PORT=str(port), **overrides)
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: http("GET", f"{base}/healthz")[0] == 200, f"{name} to answer", 60)
        return name, base

    def installed(self) -> dict[str, str]:
        """`pip list` of the runtime venv, inside a container, by canonical name. The venv
        has no pip of its own: the base image's pip looks into it."""
        listed = self.engine.must(
            "run", "--rm", self.tag, "pip", "--no-cache-dir", "--disable-pip-version-check",
            "--python", RUNTIME_VENV_PYTHON, "list", "--format=json",
        )  # fmt: skip
        return {canonicalize_name(entry["name"]): entry["version"] for entry in json.loads(listed)}

    def logs(self, name: str) -> str:
        """What a container has written to stdout and stderr."""
        return said(self.engine.docker("logs", name))

    @contextmanager
    def explained(self, name: str) -> Iterator[None]:
        """Add a container's logs to any assertion that fails inside the block."""
        try:
            yield
        except AssertionError as failure:
            raise AssertionError(f"{failure}\n--- logs of {name} ---\n{self.logs(name)}") from None

    def query(self, sql: str, *parameters: Any) -> list[tuple[Any, ...]]:
        """Rows from the variant's own database."""
        connection = psycopg2.connect(self.database_url)
        try:
            with connection, connection.cursor() as cursor:
                cursor.execute(sql, parameters)
                return cursor.fetchall() if cursor.description else []
        finally:
            connection.close()


class ImageShop:
    """Bakes and builds each variant once per session, and cleans up after them."""

    def __init__(self, engine: Engine, cookies: Any, admin_url: str) -> None:
        self._engine = engine
        self._cookies = cookies
        self._admin_url = admin_url
        self._built: dict[str, BuiltImage] = {}
        self._databases: list[str] = []

    def get(self, worker: str) -> BuiltImage:
        """The built image of that worker answer, built on first use."""
        if worker not in self._built:
            self._built[worker] = self._build(worker)
        return self._built[worker]

    def _build(self, worker: str) -> BuiltImage:
        answers = {"python_version": STANDIN_PYTHON, "worker": worker}
        result = self._cookies.bake(extra_context=answers, template=str(TEMPLATE_DIR))
        if result.exception is not None:
            pytest.fail(f"baking {answers} failed: {result.exception!r}", pytrace=False)
        project = Path(result.project_path)
        # What a developer has lying in the project: the image must carry none of it.
        env_secret = f"local-only-{uuid.uuid4().hex}"
        (project / ".env").write_text(f"SECRET_KEY={env_secret}\n")
        try:
            base = self._engine.python_base()
        except NoEngineError as reason:
            no_engine(reason)
        tag = f"{project.name}-{worker}:{RELEASE_ID}"
        self._engine.build(project, tag, BASE_IMAGE=base, RELEASE_ID=RELEASE_ID)
        database = f"template_image_{worker}_{uuid.uuid4().hex[:8]}"
        self._admin(f'CREATE DATABASE "{database}"')
        self._databases.append(database)
        url = self._admin_url.rsplit("/", 1)[0] + f"/{database}"
        built = BuiltImage(self._engine, project, tag, worker, url, env_secret)
        if worker == "celery":
            built.redis_url = self._private_redis(built)
        return built

    def _private_redis(self, built: BuiltImage) -> str:
        """A Redis of the celery variant's own, so no other user of the host's is touched."""
        port = free_port()
        name = f"redis-{uuid.uuid4().hex[:8]}"
        built.started.append(name)
        self._engine.must(
            "run", "--detach", "--name", name, "--network=host", self._engine.redis_standin(),
            "redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
        )  # fmt: skip
        url = f"redis://127.0.0.1:{port}/0"
        wait_until(lambda: flush_redis(url) is None, f"{name} to answer", 30)
        return url

    def _admin(self, statement: str) -> None:
        connection = psycopg2.connect(self._admin_url)
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement)
        finally:
            connection.close()

    def close(self) -> None:
        """Remove every container the tests started, then the databases."""
        for built in self._built.values():
            for name in built.started:
                self._engine.docker("rm", "--force", "--volumes", name)
        for database in self._databases:
            self._admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@pytest.fixture(scope="session")
def images(engine: Engine, cookies_session: Any, test_database_url: str) -> Iterator[ImageShop]:
    """Each variant's image, built once per session."""
    shop = ImageShop(engine, cookies_session, test_database_url)
    yield shop
    shop.close()


@pytest.fixture(params=VARIANTS)
def image(request: pytest.FixtureRequest, images: ImageShop) -> BuiltImage:
    """The image of one variant."""
    return images.get(request.param)


@pytest.fixture
def released(image: BuiltImage) -> BuiltImage:
    """The image after its release line has brought the variant's database to head."""
    result = image.one_off("release")
    assert result.returncode == 0, said(result)
    return image


def test_the_image_runs_as_a_numeric_user_that_is_not_root(image: BuiltImage) -> None:
    configured = image.engine.inspect("image", image.tag)
    assert configured is not None
    assert re.fullmatch(r"[1-9]\d*(:\d+)?", configured["Config"]["User"])
    ids = image.engine.must(
        "run", "--rm", image.tag, "python", "-c", "import os; print(os.getuid(), os.getgid())"
    )
    uid, gid = (int(part) for part in ids.split())
    assert uid != 0
    assert gid != 0


def test_the_image_carries_no_env_file_no_tests_and_no_compiler(
    image: BuiltImage, tmp_path: Path
) -> None:
    name = f"export-{uuid.uuid4().hex[:8]}"
    image.engine.must("create", "--name", name, image.tag)
    exported = tmp_path / "filesystem.tar"
    try:
        with exported.open("wb") as output:
            subprocess.run(
                ["docker", "export", name], stdout=output, env=image.engine.env, check=True
            )
    finally:
        image.engine.docker("rm", name)
    package = image.project.name.replace("-", "_")
    found_env, found_tests, found_compilers = [], [], []
    with tarfile.open(exported) as filesystem:
        for member in filesystem:
            path = Path(member.name)
            if path.name in (".env", ".flaskenv"):
                found_env.append(member.name)
            if "tests" in path.parts and ("app" in path.parts or package in path.parts):
                found_tests.append(member.name)
            if path.parts[:2] == ("opt", "venv") and {"test", "tests"} & set(path.parts):
                found_tests.append(member.name)  # the test suites that packages ship
            if path.parent.name == "bin" and path.name in COMPILERS:
                found_compilers.append(member.name)
            if member.isfile() and member.size < 50_000_000:
                content = filesystem.extractfile(member)
                if content is not None and image.env_secret.encode() in content.read():
                    found_env.append(f"{member.name} (holds the .env secret)")
    assert found_env == []
    configured = image.engine.inspect("image", image.tag)
    assert configured is not None
    assert "FLASK_SKIP_DOTENV=1" in configured["Config"]["Env"]
    assert found_tests == []
    assert found_compilers == []


def test_the_image_holds_the_runtime_lock_and_the_project_and_nothing_else(
    image: BuiltImage,
) -> None:
    environment = json.loads(
        image.engine.must("run", "--rm", image.tag, "python", "-c", MARKER_ENVIRONMENT_SCRIPT)
    )
    runtime = locked_pins(image.project / "requirements.lock", environment)
    installed = image.installed()
    assert installed.pop(canonicalize_name(image.project.name), None), "the project is missing"
    assert installed == runtime  # and so no pip, which the service never runs
    dev_tools = set(locked_pins(image.project / "requirements-dev.lock", environment)) - set(
        runtime
    )
    assert {"pytest", "ruff", "mypy"} <= dev_tools


def test_the_sbom_of_make_sbom_names_every_installed_package_at_its_version(
    image: BuiltImage,
) -> None:
    # The build arguments the image was built with, so that every layer comes from the cache.
    build_args = f"--network=host --build-arg BASE_IMAGE={image.engine.python_base()}"
    build_args += f" --build-arg RELEASE_ID={RELEASE_ID}"
    command = ["make", "--no-print-directory", "sbom", f"IMAGE={image.tag}"]
    made = subprocess.run(
        [*command, f"DOCKER_BUILD_ARGS={build_args}"],
        cwd=image.project, env=image.engine.env, capture_output=True, text=True, timeout=900,
        check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    sbom = json.loads((image.project / "sbom.cdx.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    listed = {canonicalize_name(c["name"]): c["version"] for c in sbom["components"]}
    assert len(listed) == len(sbom["components"]), "a package is listed twice"
    assert listed == image.installed()
    in_image = image.engine.must("run", "--rm", image.tag, "cat", SBOM_IN_IMAGE)
    assert json.loads(in_image) == sbom


def test_the_image_stays_within_its_size_budget(image: BuiltImage) -> None:
    built = image.engine.inspect("image", image.tag)
    base = image.engine.inspect("image", image.engine.python_base())
    assert built is not None
    assert base is not None
    size, own = built["Size"] / 1e6, (built["Size"] - base["Size"]) / 1e6
    budget = SIZE_BUDGET_MB[image.worker]
    assert size <= budget, (
        f"the image weighs {size:.0f} MB, over its budget of {budget} MB: {own:.0f} MB above "
        "the base. `du` the image's /opt/venv to see which packages grew, and trim them in the "
        "Dockerfile's build stage, or raise the budget knowingly"
    )


def test_the_healthcheck_of_the_image_turns_healthy(image: BuiltImage) -> None:
    configured = image.engine.inspect("image", image.tag)
    assert configured is not None
    assert configured["Config"]["Healthcheck"]["Test"][0] == "CMD"
    # The image's own check, asked every second instead of every 30 s to keep the test short.
    name, _ = image.start_web("--health-interval=1s")

    def health() -> str:
        state = image.engine.inspect("container", name)
        return str(state["State"]["Health"]["Status"]) if state else "gone"

    wait_until(lambda: health() == "healthy", f"{name} to turn healthy", 60)


def test_release_then_web_serve_the_api_with_the_built_release_id(released: BuiltImage) -> None:
    again = released.one_off("release")
    assert again.returncode == 0, said(again)  # the release line may run twice
    _, base = released.start_web()
    assert http("GET", f"{base}/healthz") == (200, {"status": "ok"})
    ready_status, ready = http("GET", f"{base}/readyz")
    assert ready_status == 200, ready
    assert set(ready["checks"].values()) == {"ok"}
    assert http("GET", f"{base}/version")[1]["release"] == RELEASE_ID
    status, created = http("POST", f"{base}/api/todos", {"title": "written in a container"})
    assert status == 201, created
    assert http("GET", f"{base}/api/todos/{created['id']}") == (200, created)
    # /docs and every file it loads: the build stage keeps these of Swagger UI's files.
    status, page = fetched(f"{base}/docs")
    assert status == 200
    loaded = [html.unescape(url) for url in re.findall(r'(?:src|href)="(/[^"]+)"', page.decode())]
    assert any("swagger-ui-bundle.js" in url for url in loaded), page
    for url in loaded:
        assert fetched(f"{base}{url}")[0] == 200, url


def test_docker_stop_lets_the_request_in_flight_finish_and_exits_zero(
    released: BuiltImage,
) -> None:
    name, base = released.start_web()
    answers: list[object] = []

    def read() -> None:
        try:
            answers.append(http("GET", f"{base}/api/todos", timeout=60)[0])
        except OSError as error:  # a connection cut mid-request is the failure to show
            answers.append(error)

    blocker = psycopg2.connect(released.database_url)
    try:
        with blocker.cursor() as cursor:
            cursor.execute("LOCK TABLE todos IN ACCESS EXCLUSIVE MODE")
        reader = threading.Thread(target=read)
        reader.start()
        wait_until(lambda: waiting_on_a_lock(released), "the request to wait on the table lock")
        started = time.monotonic()
        stopping = subprocess.Popen(
            ["docker", "stop", "--time=30", name],
            env=released.engine.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: "term" in released.logs(name).lower(), "gunicorn to get SIGTERM", 10)
    finally:
        blocker.rollback()
        blocker.close()
    reader.join(timeout=60)
    assert stopping.wait(timeout=60) == 0
    elapsed = time.monotonic() - started
    assert answers == [200]
    state = released.engine.inspect("container", name)
    assert state is not None
    assert state["State"]["ExitCode"] == 0, released.logs(name)
    assert elapsed < 30, f"docker stop took {elapsed:.1f} s: the grace period ran out"


def waiting_on_a_lock(image: BuiltImage) -> bool:
    """Whether a query of the variant's database is waiting for a lock."""
    rows = image.query(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock'"
    )
    return bool(rows[0][0])


def todo_archived(base: str, todo_id: int) -> bool:
    """Whether the API shows the todo archived."""
    return http("GET", f"{base}/api/todos/{todo_id}")[1].get("archived_at") is not None


@pytest.fixture
def celery_image(images: ImageShop) -> BuiltImage:
    """The celery variant, released, its Redis empty: no task of another test is left."""
    built = images.get("celery")
    result = built.one_off("release")
    assert result.returncode == 0, said(result)
    flush_redis(built.redis_url)
    return built


def test_a_worker_container_archives_a_todo(celery_image: BuiltImage) -> None:
    _, base = celery_image.start_web()
    worker = celery_image.start("worker")
    status, todo = http("POST", f"{base}/api/todos", {"title": "archive me"})
    assert status == 201
    assert http("POST", f"{base}/api/todos/{todo['id']}/archive")[0] == 202
    with celery_image.explained(worker):
        wait_until(lambda: todo_archived(base, todo["id"]), "the worker to archive the todo")
    stopped = celery_image.engine.docker("stop", "--time=30", worker)
    assert stopped.returncode == 0
    state = celery_image.engine.inspect("container", worker)
    assert state is not None
    assert state["State"]["ExitCode"] == 0, celery_image.logs(worker)


def test_a_worker_container_stopped_mid_task_leaves_the_task_to_another(
    celery_image: BuiltImage,
) -> None:
    # Short limits, so that the broker hands the lost task on within seconds; the time limits
    # leave the task blocked until the SIGKILL, so it is lost rather than timed out.
    limits = {"TASK_SOFT_TIME_LIMIT": "3", "TASK_TIME_LIMIT": "4", "BROKER_VISIBILITY_TIMEOUT": "5"}
    _, base = celery_image.start_web()
    status, todo = http("POST", f"{base}/api/todos", {"title": "survive a lost worker"})
    assert status == 201
    blocker = psycopg2.connect(celery_image.database_url)
    try:
        with blocker.cursor() as cursor:
            cursor.execute("SELECT id FROM todos WHERE id = %s FOR UPDATE", (todo["id"],))
        doomed = celery_image.start("worker", **limits)
        assert http("POST", f"{base}/api/todos/{todo['id']}/archive")[0] == 202
        with celery_image.explained(doomed):
            wait_until(lambda: waiting_on_a_lock(celery_image), "the task to block on the row lock")
        # SIGTERM, then SIGKILL a second later while the task is still blocked.
        celery_image.engine.must("stop", "--time=1", doomed)
    finally:
        blocker.rollback()
        blocker.close()
    assert not todo_archived(base, todo["id"])
    rescuer = celery_image.start("worker", **limits)
    with celery_image.explained(rescuer):
        wait_until(lambda: todo_archived(base, todo["id"]), "another worker to run the lost task")
    assert "todo archived" in celery_image.logs(rescuer)
