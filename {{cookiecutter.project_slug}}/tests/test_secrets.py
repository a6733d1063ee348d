"""Secrets never leave a process: not on its stdout or stderr, not in a response, whatever fails.

Each test gives the processes a database role with a real password, in the URL shapes the
service accepts, and a SECRET_KEY; then it collects every byte the processes write and every
answer they give, and looks for the secrets in them, percent-encoded or not.
"""

from __future__ import annotations

import contextlib
import secrets
import string
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import URL, create_engine, text

from .databases import role_with_database
from .environments import service_environment
from .http_client import Exchange, http_exchange
from .option_tests import OPTION_TESTS
from .processes import RunningService, free_port, run_flask_command, run_process, web_process

pytestmark = pytest.mark.processes


def random_letters(count: int) -> str:
    """Letters only: no request id, timestamp or hex digest can contain them by chance."""
    return "".join(secrets.choice(string.ascii_letters) for _ in range(count))


# Characters a URL must percent-encode, around a core that every encoding leaves as it is.
PASSWORD_CORE = random_letters(16)
PASSWORD = f"p@ss/w0rd:{PASSWORD_CORE}"
ENCODED_PASSWORD = quote(PASSWORD, safe="")
SECRET_KEY = f"key-{random_letters(32)}"
SECRET_FORMS = {
    "the password": PASSWORD,
    "the percent-encoded password": ENCODED_PASSWORD,
    "the password, however encoded": PASSWORD_CORE,
    "SECRET_KEY": SECRET_KEY,
}
# The chosen options' secrets carry the same password.
OPTION_SECRETS = {
    name: value
    for option in OPTION_TESTS
    for name, value in option.with_password(ENCODED_PASSWORD).items()
}

# Every URL shape the service accepts, and both ways of delivering the secrets. Config
# rewrites each accepted scheme to one at validation, so past `flask show-config` (which
# shows the parsed settings) only the delivery can change what a process does: the tests
# that start the service take one shape per delivery.
SHAPES = {
    "postgres://": ("postgres", "environment"),
    "postgresql://": ("postgresql", "environment"),
    "postgresql+psycopg2://": ("postgresql+psycopg2", "environment"),
    "postgresql:// in _FILE": ("postgresql", "file"),
}
DELIVERIES = {"in the environment": "postgresql://", "in _FILE": "postgresql:// in _FILE"}
MAX_CONTENT_LENGTH = 1024


@dataclass
class Transcript:
    """Every byte the processes of a test wrote and every answer they gave, by source."""

    sources: dict[str, bytes] = field(default_factory=dict)

    def add(self, source: str, data: bytes | str) -> None:
        """Keep what one source said, after what it said before."""
        more = data.encode() if isinstance(data, str) else data
        self.sources[source] = self.sources.get(source, b"") + more

    def add_process(self, source: str, result: subprocess.CompletedProcess[str]) -> None:
        """Keep both output streams of a process that ran to its end."""
        self.add(f"{source} stdout", result.stdout)
        self.add(f"{source} stderr", result.stderr)

    def add_service(self, source: str, service: RunningService) -> None:
        """Keep both output streams of a web process that has stopped."""
        self.add(f"{source} stdout", service.stdout_path.read_bytes())
        self.add(f"{source} stderr", service.stderr_path.read_bytes())

    def add_answer(self, source: str, answer: Exchange) -> Exchange:
        """Keep a response whole: status, headers and body."""
        headers = "".join(f"{name}: {value}\n" for name, value in answer.headers)
        self.add(source, f"{answer.status}\n{headers}\n".encode() + answer.body)
        return answer

    def leaks(self) -> list[str]:
        """Which secret showed up where, compared without regard to case (as %2F and %2f)."""
        return [
            f"{name} in {source}"
            for source, data in self.sources.items()
            for name, form in SECRET_FORMS.items()
            if form.lower().encode() in data.lower()
        ]

    def total_bytes(self) -> int:
        """How much was looked at, so an empty transcript cannot pass unnoticed."""
        return sum(len(data) for data in self.sources.values())


@dataclass
class Role:
    """A PostgreSQL role that logs in with PASSWORD, and a database of its own."""

    admin_url: URL
    name: str
    database: str

    def url(self, scheme: str, port: int | None = None) -> str:
        """The role's URL in one shape, its password percent-encoded as a URL needs."""
        host, default_port = self.admin_url.host or "127.0.0.1", self.admin_url.port or 5432
        return (
            f"{scheme}://{self.name}:{ENCODED_PASSWORD}@{host}:{port or default_port}"
            f"/{self.database}"
        )

    def execute(self, statement: str, **parameters: str) -> None:
        """Run a statement in the role's database as the administrator."""
        engine = create_engine(
            self.admin_url.set(database=self.database), isolation_level="AUTOCOMMIT"
        )
        with engine.connect() as connection:
            connection.execute(text(statement), parameters)
        engine.dispose()


@pytest.fixture
def role(admin_url: URL) -> Iterator[Role]:
    """A role with a password and an empty database it owns; both dropped afterwards."""
    with role_with_database(admin_url, "secrets", PASSWORD) as name:
        yield Role(admin_url, name, name)


def secret_environment(
    database_url: str, delivery: str, secrets_dir: Path, **overrides: str
) -> dict[str, str]:
    """A service environment holding the secrets, as variables or as mounted files."""
    environment = service_environment(
        database_url,
        SECRET_KEY=SECRET_KEY,
        **OPTION_SECRETS,
        WEB_CONCURRENCY="1",
        MAX_CONTENT_LENGTH=str(MAX_CONTENT_LENGTH),
        **overrides,
    )
    if delivery == "file":
        secrets_dir.mkdir(exist_ok=True)
        for variable in ("DATABASE_URL", "SECRET_KEY"):
            path = secrets_dir / variable.lower()
            path.write_text(environment.pop(variable) + "\n")
            environment[f"{variable}_FILE"] = str(path)
    return environment


@contextlib.contextmanager
def logins_refused(role: Role) -> Iterator[None]:
    """The server refuses the role's logins, as it would a wrong password, and ends its sessions."""
    role.execute(f'ALTER ROLE "{role.name}" NOLOGIN')
    role.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :name",
        name=role.name,
    )
    try:
        yield
    finally:
        role.execute(f'ALTER ROLE "{role.name}" LOGIN')


def call(
    transcript: Transcript,
    service: RunningService,
    method: str,
    path: str,
    status: int,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> Exchange:
    """Send a request, keep its answer in the transcript, and check its status."""
    answer = http_exchange(method, f"{service.base_url}{path}", body, headers)
    transcript.add_answer(f"{method} {path} ({status})", answer)
    assert answer.status == status, answer.body
    return answer


JSON = {"Content-Type": "application/json"}
PLAIN_TEXT = {"Content-Type": "text/plain"}


def assert_nothing_leaked(transcript: Transcript) -> None:
    """Fail naming each place a secret showed up."""
    assert transcript.total_bytes() > 0
    leaks = transcript.leaks()
    assert not leaks, "a secret showed up: " + "; ".join(leaks)


@pytest.fixture(params=list(SHAPES.values()), ids=list(SHAPES))
def shape(request: pytest.FixtureRequest) -> tuple[str, str]:
    """A URL scheme and a way to deliver the secrets (variables or files)."""
    scheme, delivery = request.param
    return scheme, delivery


@pytest.fixture(params=[SHAPES[name] for name in DELIVERIES.values()], ids=list(DELIVERIES))
def delivery_shape(request: pytest.FixtureRequest) -> tuple[str, str]:
    """One URL shape for each way to deliver the secrets."""
    scheme, delivery = request.param
    return scheme, delivery


def test_release_web_and_admin_commands_never_show_a_secret(
    role: Role, delivery_shape: tuple[str, str], tmp_path: Path
) -> None:
    scheme, delivery = delivery_shape
    environment = secret_environment(role.url(scheme), delivery, tmp_path / "secrets")
    transcript = Transcript()

    release = run_process("release", environment)
    transcript.add_process("release", release)
    assert release.returncode == 0, release.stderr
    count = run_flask_command(environment, "count-todos")
    transcript.add_process("flask count-todos", count)
    assert count.returncode == 0, count.stderr

    with web_process(environment, tmp_path) as service:
        call(transcript, service, "GET", "/healthz", 200)
        call(transcript, service, "GET", "/readyz", 200)
        call(transcript, service, "GET", "/version", 200)
        call(transcript, service, "GET", "/openapi.json", 200)
        call(transcript, service, "POST", "/api/todos", 201, b'{"title": "kept"}', JSON)
        call(transcript, service, "GET", "/api/todos", 200)
        call(transcript, service, "GET", "/api/todos/999999", 404)
        call(transcript, service, "GET", "/no/such/route", 404)
        call(transcript, service, "PUT", "/api/todos", 405, b"{}", JSON)
        call(transcript, service, "POST", "/api/todos", 400, b'{"title": ', JSON)
        call(transcript, service, "POST", "/api/todos", 415, b"title=x", PLAIN_TEXT)
        call(transcript, service, "POST", "/api/todos", 422, b'{"title": ""}', JSON)
        oversized = b'{"title": "' + b"x" * MAX_CONTENT_LENGTH + b'"}'
        call(transcript, service, "POST", "/api/todos", 413, oversized, JSON)
        # An error the service does not expect: the role may no longer read the table. The
        # 500's traceback goes to the log, which is read below like the rest.
        role.execute(f'REVOKE ALL ON todos FROM "{role.name}"')
        call(transcript, service, "GET", "/api/todos", 500)
        with logins_refused(role):
            call(transcript, service, "GET", "/readyz", 503)
            call(transcript, service, "GET", "/api/todos", 503)
    transcript.add_service("web", service)
    assert_nothing_leaked(transcript)


def test_a_database_that_is_down_shows_no_secret(
    role: Role, delivery_shape: tuple[str, str], tmp_path: Path
) -> None:
    scheme, delivery = delivery_shape
    closed_port = free_port()
    environment = secret_environment(role.url(scheme, closed_port), delivery, tmp_path / "secrets")
    transcript = Transcript()

    release = run_process("release", environment)
    transcript.add_process("release", release)
    assert release.returncode != 0
    count = run_flask_command(environment, "count-todos")
    transcript.add_process("flask count-todos", count)
    assert count.returncode != 0
    with web_process(environment, tmp_path) as service:
        call(transcript, service, "GET", "/readyz", 503)
        call(transcript, service, "GET", "/api/todos", 503)
        call(transcript, service, "POST", "/api/todos", 503, b'{"title": "lost"}', JSON)
    transcript.add_service("web", service)
    assert_nothing_leaked(transcript)


def test_a_process_that_cannot_start_shows_no_secret(
    role: Role, delivery_shape: tuple[str, str], tmp_path: Path
) -> None:
    scheme, delivery = delivery_shape
    transcript = Transcript()
    bad_port = secret_environment(role.url(scheme), delivery, tmp_path / "port", PORT="eighty")
    # A URL of the wrong kind, password and all, must be refused without being repeated.
    wrong_kind = role.url(scheme).replace(f"{scheme}://", "mysql://", 1)
    bad_url = secret_environment(wrong_kind, delivery, tmp_path / "url")
    failures = [
        ("web", "PORT", run_process("web", bad_port)),
        ("release", "DATABASE_URL", run_process("release", bad_url)),
        ("web", "DATABASE_URL", run_process("web", bad_url)),
        ("flask show-config", "DATABASE_URL", run_flask_command(bad_url, "show-config")),
    ]
    for source, variable, result in failures:
        transcript.add_process(f"{source} with a bad {variable}", result)
    assert_nothing_leaked(transcript)
    for _source, variable, result in failures:
        assert result.returncode == 1
        assert variable in result.stderr


def test_show_config_masks_every_secret(role: Role, shape: tuple[str, str], tmp_path: Path) -> None:
    scheme, delivery = shape
    environment = secret_environment(role.url(scheme), delivery, tmp_path / "secrets")
    transcript = Transcript()
    result = run_flask_command(environment, "show-config")
    transcript.add_process("flask show-config", result)
    assert result.returncode == 0, result.stderr
    assert f"{role.name}:***@" in result.stdout
    assert_nothing_leaked(transcript)
