"""Helpers for tests that run the real thing: databases, migrations and processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import URL, Connection, create_engine, text

from {{ cookiecutter.package_name }}.config import (
    OPTION_SETTINGS,
    EnvironmentSettings,
    Settings,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The module the web process serves, as the Procfile names it.
WSGI_MODULE = "{{ cookiecutter.package_name }}.wsgi"
VENV_BIN = Path(sys.executable).parent

TEST_SECRET_KEY = "test-secret-key-not-for-production"


def revised(settings: Settings, **changes: object) -> Settings:
    """A validated copy of settings with some values changed."""
    return Settings(**{**settings.model_dump(), **changes})


def count_todos(database_url: str) -> int:
    """How many todos a database holds, read with a connection of the test's own."""
    engine = create_engine(database_url)
    with engine.connect() as connection:
        total = connection.scalar(text("SELECT count(*) FROM todos"))
    engine.dispose()
    return int(total or 0)


def create_database(admin_url: URL, name: str) -> None:
    """Create an empty database on the server of admin_url."""
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()


def drop_database(admin_url: URL, name: str) -> None:
    """Drop a database, closing whatever connections are still open to it."""
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@contextlib.contextmanager
def temporary_database(admin_url: URL, purpose: str, revision: str | None = None) -> Iterator[str]:
    """A database of its own for a test, migrated to revision if given; dropped afterwards."""
    name = f"test_{purpose}_{uuid.uuid4().hex[:12]}"
    create_database(admin_url, name)
    try:
        url = admin_url.set(database=name).render_as_string(hide_password=False)
        if revision is not None:
            migrate(url, revision)
        yield url
    finally:
        drop_database(admin_url, name)


@contextlib.contextmanager
def role_with_database(admin_url: URL, purpose: str, password: str) -> Iterator[str]:
    """A role that logs in with a password, and an empty database of the same name that it owns;
    both dropped afterwards. Yields the name.

    The local server may trust every login from 127.0.0.1 (pg_hba.conf), so a wrong password
    could pass as well as the right one: what the tests need is a URL that carries one.
    """
    name = f"test_{purpose}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(
            text(f'CREATE ROLE "{name}" LOGIN PASSWORD :password'), {"password": password}
        )
        connection.execute(text(f'CREATE DATABASE "{name}" OWNER "{name}"'))
    try:
        yield name
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'DROP ROLE IF EXISTS "{name}"'))
        admin.dispose()


def start_from_required_variables(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    """Unset every variable the service reads, then set the ones it cannot start without."""
    for name in SERVICE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in required_environment(database_url).items():
        monkeypatch.setenv(name, value)


def alembic_config(database_url: str) -> Config:
    """Alembic's configuration for this project, pointed at one database."""
    config = Config(PROJECT_ROOT / "alembic.ini")
    config.attributes["database_url"] = database_url
    return config


def migrate(database_url: str, revision: str) -> None:
    """Upgrade (or, for 'base', downgrade) a database to a revision."""
    config = alembic_config(database_url)
    if revision == "base":
        command.downgrade(config, revision)
    else:
        command.upgrade(config, revision)


def procfile_command(process_type: str) -> list[str]:
    """The command of one Procfile line, as an argument list."""
    for line in (PROJECT_ROOT / "Procfile").read_text().splitlines():
        name, _, command_line = line.partition(":")
        if name.strip() == process_type:
            return command_line.split()
    raise LookupError(f"the Procfile has no {process_type!r} line")


def run_flask_command(
    environment: Mapping[str, str], *arguments: str
) -> subprocess.CompletedProcess[str]:
    """Run `flask --app <package>.wsgi ...` as an operator would, to completion.

    As on a platform, no .env or .flaskenv is read: only the environment given counts.
    """
    return subprocess.run(
        [str(VENV_BIN / "flask"), "--app", WSGI_MODULE, *arguments],
        cwd=PROJECT_ROOT,
        env={**environment, "FLASK_SKIP_DOTENV": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def variables_of(model: type[EnvironmentSettings]) -> set[str]:
    """The environment variables a settings model reads, <NAME>_FILE ones included."""
    return {name.upper() for name in model.model_fields} | {
        f"{name}_FILE" for name in model.secret_variables
    }


# Every variable the service reads, its chosen options' included; tests set them explicitly,
# never inherit them.
SERVICE_VARIABLES = frozenset(variables_of(Settings).union(*map(variables_of, OPTION_SETTINGS)))


@dataclass(frozen=True)
class OptionTests:
    """What an option chosen for this project adds to the tests of the whole service.

    The option's test plugin (tests/option_<name>.py, which conftest.py loads) registers
    one with add_option_tests, so that no module shared by every project names the option.
    """

    # Test values of the variables without which no process starts once the option is in.
    environment: Mapping[str, str]
    # Those variables again, each secret carrying the given (percent-encoded) password.
    with_password: Callable[[str], Mapping[str, str]]
    process_types: frozenset[str] = field(default_factory=frozenset)
    # Requests that name a todo by its id, as b"METHOD /path/%s".
    todo_routes: tuple[bytes, ...] = ()


OPTION_TESTS: list[OptionTests] = []


def add_option_tests(option: OptionTests) -> None:
    """Make an option's variables, processes and routes part of every test that lists them."""
    OPTION_TESTS.append(option)


def option_environment() -> dict[str, str]:
    """Test values of the variables the chosen options require."""
    return {name: value for option in OPTION_TESTS for name, value in option.environment.items()}


def required_environment(database_url: str) -> dict[str, str]:
    """Values for the variables without which no process of the service starts."""
    return {
        "DATABASE_URL": database_url,
        "SECRET_KEY": TEST_SECRET_KEY,
        **option_environment(),
    }


def service_environment(database_url: str, **overrides: str) -> dict[str, str]:
    """The environment a service process gets: this one's, with the service's variables set."""
    environment = {
        name: value for name, value in os.environ.items() if name not in SERVICE_VARIABLES
    }
    environment.update(required_environment(database_url))
    environment.update(
        PATH=f"{VENV_BIN}{os.pathsep}{environment.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
        LOG_FORMAT="json",
        # Stop at once on SIGTERM; the drain period has tests of its own.
        DRAIN_SECONDS="0",
    )
    environment.update(overrides)
    return environment


def run_process(
    process_type: str, environment: Mapping[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run a Procfile process to completion, as a platform would run a one-off."""
    return subprocess.run(
        procfile_command(process_type),
        cwd=PROJECT_ROOT,
        env=dict(environment),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def http_request(
    method: str,
    url: str,
    payload: object = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10,
) -> tuple[int, bytes]:
    """Send a request to a server on this machine; the status and body, errors included."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
    if data is not None:
        request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def http_get(url: str, headers: Mapping[str, str] | None = None) -> tuple[int, bytes]:
    """GET a URL on this machine; the status and body, errors included."""
    return http_request("GET", url, headers=headers)


def wait_until_serving(url: str, process: subprocess.Popen[bytes], deadline: float = 30) -> None:
    """Poll url until it answers 200, failing early if the process dies."""
    stop_at = time.monotonic() + deadline
    while time.monotonic() < stop_at:
        if process.poll() is not None:
            raise RuntimeError(f"the process exited with {process.returncode} before serving")
        with contextlib.suppress(OSError):
            if http_get(url)[0] == 200:
                return
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer 200 within {deadline} s")


@dataclass
class RunningService:
    """A web process started by a test, and where its stdout and stderr go."""

    base_url: str
    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    def stdout_lines(self) -> list[str]:
        """What the process has printed on stdout so far, line by line."""
        return self.stdout_path.read_text(encoding="utf-8").splitlines()


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is pid, read from /proc."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # The parent pid is the fourth field, after the name in parentheses.
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                children.append(int(stat.parent.name))
    return children


def stop_process(process: subprocess.Popen[bytes], timeout: float = 30) -> int:
    """SIGTERM a process we started, by its PID; SIGKILL it if it lingers. Its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return int(process.returncode)


@contextlib.contextmanager
def web_process(environment: Mapping[str, str], log_dir: Path) -> Iterator[RunningService]:
    """Start the Procfile's web process on a free port, serve, then stop it by its PID."""
    port = free_port()
    stdout_path, stderr_path = log_dir / f"web-{port}.out", log_dir / f"web-{port}.err"
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            procfile_command("web"),
            cwd=PROJECT_ROOT,
            env={**environment, "PORT": str(port)},
            stdout=stdout,
            stderr=stderr,
            # Its own process group, so a test can kill the server and its workers at once.
            start_new_session=True,
        )
    service = RunningService(f"http://127.0.0.1:{port}", process, stdout_path, stderr_path)
    try:
        wait_until_serving(f"{service.base_url}/healthz", process)
        yield service
    finally:
        stop_process(process)


WAIT_SECONDS = 60


def comes_true(condition: Callable[[], object], seconds: float) -> bool:
    """Poll condition() for up to seconds; whether it came true."""
    stop_at = time.monotonic() + seconds
    while time.monotonic() < stop_at:
        if condition():
            return True
        time.sleep(0.1)
    return False


def wait_for(condition: Callable[[], object], what: str, seconds: float = WAIT_SECONDS) -> None:
    """Poll until condition() is true; fail naming what was awaited."""
    if not comes_true(condition, seconds):
        pytest.fail(f"timed out after {seconds} s waiting for {what}")


@contextlib.contextmanager
def row_locked(database_url: str, todo_id: int) -> Iterator[Connection]:
    """Hold a todo's row lock, so whatever updates it stops half-way; roll back to free it."""
    engine = create_engine(database_url)
    connection = engine.connect()
    try:
        connection.execute(text("SELECT id FROM todos WHERE id = :id FOR UPDATE"), {"id": todo_id})
        yield connection
    finally:
        connection.close()
        engine.dispose()


def waits_for_lock(database_url: str, statement: str = "") -> bool:
    """True when a statement (beginning so) in this database waits for a lock, asked in a
    fresh session, since pg_stat_activity is a snapshot for the length of a transaction.

    pg_stat_activity shows the whole server, where other test runs may be waiting too.
    """
    engine = create_engine(database_url)
    with engine.connect() as connection:
        waiting = connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE :pattern"
            ),
            {"pattern": f"{statement}%"},
        )
    engine.dispose()
    return bool(waiting)


def update_waits_for_lock(database_url: str) -> bool:
    """True when an UPDATE of todos in this database waits for a lock."""
    return waits_for_lock(database_url, "UPDATE todos")


@dataclass
class Exchange:
    """One request's answer, as the caller got it: status, every header line, body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The value of a header the answer carries once, or None if it has none."""
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        assert len(values) <= 1, f"{name} appears {len(values)} times"
        return values[0] if values else None


def http_exchange(
    method: str, url: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
) -> Exchange:
    """Send raw bytes to a server on this machine; the whole answer, errors included."""
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return Exchange(int(response.status), response.headers.items(), response.read())
    except urllib.error.HTTPError as error:
        return Exchange(error.code, error.headers.items(), error.read())
