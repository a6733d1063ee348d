"""Error reports: each unhandled error of the real web process reaches SENTRY_DSN, once, with
the release and the failure, and with none of the service's secrets in what is sent.

The error is a real one: the test takes the todos table away in the service's own database,
so the next read fails with an error nothing handles (a ProgrammingError, unlike a database
that is down, which is a 503), and puts it back to see the service recover.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import sentry_sdk
from pydantic import SecretStr
from sqlalchemy import URL, create_engine, text

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.observability.error_reports import (
    FILTERED,
    scrubber,
    secret_values,
)
from {{ cookiecutter.package_name }}.observability.settings import (
    ObservabilitySettings,
)

from ..databases import migrate, role_with_database
from ..environments import service_environment
from ..http_client import http_exchange, http_get
from ..processes import RunningService, wait_for, web_process
from .sentry_standin import SentryStandIn, random_letters, sentry_standin

# Characters a URL must percent-encode, around a core that every encoding leaves as it is.
PASSWORD_CORE = random_letters(16)
PASSWORD = f"p@ss/w0rd:{PASSWORD_CORE}"
ENCODED_PASSWORD = quote(PASSWORD, safe="")
SECRET_KEY = f"key-{random_letters(32)}"
RELEASE_ID = f"release-{uuid.uuid4().hex[:8]}"
PROBLEM_MIMETYPE = "application/problem+json"
# Seconds to wait for a report the SDK sends from its background thread.
REPORT_WAIT_SECONDS = 30


@dataclass
class Role:
    """A PostgreSQL role that logs in with PASSWORD, owning a migrated database of its own."""

    admin_url: URL
    name: str

    @property
    def url(self) -> str:
        """The role's URL, its password percent-encoded as a URL needs."""
        host, port = self.admin_url.host or "127.0.0.1", self.admin_url.port or 5432
        return f"postgresql://{self.name}:{ENCODED_PASSWORD}@{host}:{port}/{self.name}"

    def execute(self, statement: str) -> None:
        """Run a statement in the role's database as the administrator."""
        engine = create_engine(self.admin_url.set(database=self.name), isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(statement))
        engine.dispose()


@pytest.fixture
def role(admin_url: URL) -> Iterator[Role]:
    """A role with a password and a database it owns, migrated; both dropped afterwards.

    Any password would do on a server that trusts local logins: what matters is that
    DATABASE_URL carries one, for the reports to leave out.
    """
    with role_with_database(admin_url, "reports", PASSWORD) as name:
        created = Role(admin_url, name)
        # As the role, so that it owns the tables; Alembic is given the driver by name.
        migrate(created.url.replace("postgresql://", "postgresql+psycopg2://", 1), "head")
        yield created


@pytest.fixture
def standin() -> Iterator[SentryStandIn]:
    """A stand-in for Sentry's ingest on 127.0.0.1."""
    with sentry_standin() as running:
        yield running


def reporting_environment(role: Role, dsn: str | None, secrets_dir: Path | None) -> dict[str, str]:
    """The web process's environment: its secrets as variables, or as mounted files."""
    secrets = {"DATABASE_URL": role.url, "SECRET_KEY": SECRET_KEY}
    if dsn is not None:
        secrets["SENTRY_DSN"] = dsn
    environment = service_environment(role.url, RELEASE_ID=RELEASE_ID, WEB_CONCURRENCY="1")
    for variable, value in secrets.items():
        if secrets_dir is None:
            environment[variable] = value
        else:
            path = secrets_dir / variable.lower()
            path.write_text(value + "\n")
            environment.pop(variable, None)
            environment[f"{variable}_FILE"] = str(path)
    return environment


def fail_unexpectedly(service: RunningService, role: Role) -> None:
    """Make one request fail with an error no handler expects, then undo the cause."""
    role.execute("ALTER TABLE todos RENAME TO todos_elsewhere")
    try:
        answer = http_exchange("GET", f"{service.base_url}/api/todos")
    finally:
        role.execute("ALTER TABLE todos_elsewhere RENAME TO todos")
    assert answer.status == 500, answer.body
    assert answer.header("Content-Type") == PROBLEM_MIMETYPE
    assert json.loads(answer.body) == {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "The server failed to complete the request.",
    }


def assert_serving(service: RunningService) -> None:
    """The service answers as before the failure: the error left nothing broken behind."""
    assert http_get(f"{service.base_url}/api/todos")[0] == 200
    assert http_get(f"{service.base_url}/readyz")[0] == 200


def exception_types(event: dict[str, Any]) -> list[str]:
    """The types of a reported exception and of those it was raised from, outermost last."""
    return [value["type"] for value in event["exception"]["values"]]


def leaks(standin: SentryStandIn, dsn_key: str) -> list[str]:
    """Which secret showed up in what the stand-in received, compared without regard to case.

    The DSN's key is expected in one place alone: the X-Sentry-Auth header, which is how
    Sentry tells whose report it is.
    """
    secrets = {
        "the database password": PASSWORD,
        "the percent-encoded database password": ENCODED_PASSWORD,
        "the database password, however encoded": PASSWORD_CORE,
        "SECRET_KEY": SECRET_KEY,
        "the DSN's key": dsn_key,
    }
    found = []
    for number, request in enumerate(standin.requests(), start=1):
        headers = "\n".join(
            f"{name}: {value}"
            for name, value in request.headers.items()
            if name.lower() != "x-sentry-auth"
        )
        places = {
            "headers": headers.encode(),
            "body as sent": request.raw_body,
            "body": request.body,
        }
        found += [
            f"{secret} in the {place} of request {number}"
            for secret, value in secrets.items()
            for place, data in places.items()
            if value.lower().encode() in data.lower()
        ]
    return found


@pytest.mark.processes
@pytest.mark.parametrize("delivery", ["variables", "files"])
def test_an_unexpected_error_is_reported_once_with_the_release_and_no_secret(
    role: Role, standin: SentryStandIn, delivery: str, tmp_path: Path
) -> None:
    secrets_dir = tmp_path / "secrets" if delivery == "files" else None
    if secrets_dir is not None:
        secrets_dir.mkdir()
    environment = reporting_environment(role, standin.dsn, secrets_dir)
    with web_process(environment, tmp_path) as service:
        fail_unexpectedly(service, role)
        wait_for(standin.events, "the error report", REPORT_WAIT_SECONDS)
        assert_serving(service)
    # The web process has stopped, and with it the SDK, which sends what it holds first.
    events = standin.events()
    assert len(events) == 1, [exception_types(event) for event in events]
    (event,) = events
    assert event["release"] == RELEASE_ID
    assert event["level"] == "error"
    assert exception_types(event)[-1] == "ProgrammingError"
    assert event["request"]["method"] == "GET"
    assert event["request"]["url"].endswith("/api/todos")
    found = leaks(standin, standin.key)
    assert not found, "a secret was sent: " + "; ".join(found)
    assert all(request.body for request in standin.requests())


@pytest.mark.processes
@pytest.mark.parametrize("dsn", [None, ""], ids=["unset", "empty"])
def test_an_unexpected_error_is_not_sent_anywhere_without_a_dsn(
    role: Role, standin: SentryStandIn, dsn: str | None, tmp_path: Path
) -> None:
    environment = reporting_environment(role, dsn, None)
    with web_process(environment, tmp_path) as service:
        fail_unexpectedly(service, role)
        assert_serving(service)
    assert standin.requests() == []


@pytest.mark.processes
def test_client_errors_are_not_reported(role: Role, standin: SentryStandIn, tmp_path: Path) -> None:
    environment = reporting_environment(role, standin.dsn, None)
    with web_process(environment, tmp_path) as service:
        base = service.base_url
        json_body = {"Content-Type": "application/json"}
        answers = [
            http_exchange("GET", f"{base}/api/todos/999999"),
            http_exchange("GET", f"{base}/no/such/route"),
            http_exchange("POST", f"{base}/api/todos", b'{"title": ""}', json_body),
            http_exchange("POST", f"{base}/api/todos", b'{"title": ', json_body),
            http_exchange("DELETE", f"{base}/api/todos"),
        ]
        assert [answer.status for answer in answers] == [404, 404, 422, 400, 405]
        # Then a 500, whose report, sent after theirs would have been, shows reports leave.
        fail_unexpectedly(service, role)
        wait_for(standin.events, "the 500's report", REPORT_WAIT_SECONDS)
    events = standin.events()
    assert [exception_types(event)[-1] for event in events] == ["ProgrammingError"]


@pytest.mark.parametrize("dsn", [None, ""], ids=["unset", "empty"])
def test_without_a_dsn_the_app_starts_no_error_reporter(
    settings: Settings, dsn: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SENTRY_DSN_FILE", raising=False)
    if dsn is None:
        monkeypatch.delenv("SENTRY_DSN", raising=False)
    else:
        monkeypatch.setenv("SENTRY_DSN", dsn)
    app = create_app(settings)
    try:
        assert not sentry_sdk.get_client().is_active()
        assert sentry_sdk.get_client().dsn is None
    finally:
        app.extensions["database"].dispose()


def test_every_secret_of_the_settings_is_replaced_wherever_a_report_holds_it() -> None:
    dsn_key = random_letters(32)
    service = Settings(
        database_url=f"postgresql://app:{ENCODED_PASSWORD}@db.internal/app",
        secret_key=SecretStr(SECRET_KEY),
    )
    observability = ObservabilitySettings(sentry_dsn=f"https://{dsn_key}@sentry.internal/7")
    scrub = scrubber(secret_values([service, observability]))
    event: Any = {
        "message": f"connect to {service.database_url} failed",
        "exception": {"values": [{"type": "KeyError", "value": repr(SECRET_KEY)}]},
        "extra": {"password": PASSWORD, "nested": [{"key": f"x{SECRET_KEY}x"}]},
        "contexts": {"trace": {"dynamic_sampling_context": {"public_key": dsn_key}}},
        "frames": [{"vars": {"url": ENCODED_PASSWORD, "quoted": f'"{PASSWORD}"'}}],
    }
    scrubbed = json.dumps(scrub(event, {}))
    for secret in (PASSWORD, ENCODED_PASSWORD, PASSWORD_CORE, SECRET_KEY, dsn_key):
        assert secret not in scrubbed
    assert FILTERED in scrubbed
    assert "db.internal/app failed" in scrubbed
