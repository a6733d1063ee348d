"""Configuration comes from the environment alone and is checked before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.config import ConfigError, load_settings

from .environments import (
    SERVICE_VARIABLES,
    TEST_SECRET_KEY,
    required_environment,
    service_environment,
    start_from_required_variables,
)
from .processes import PROJECT_ROOT, run_process

GOOD_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REQUIRED_VARIABLES = sorted(required_environment(GOOD_URL))


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Start each test with only the required variables of the service set."""
    start_from_required_variables(monkeypatch, GOOD_URL)
    return monkeypatch


def config_error(monkeypatch: pytest.MonkeyPatch, **variables: str | None) -> str:
    """Set or unset variables, load the settings, and return the error message."""
    for name, value in variables.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    return str(caught.value)


def test_defaults_apply_when_only_the_required_variables_are_set() -> None:
    settings = load_settings()
    assert settings.port == 8000
    assert settings.log_format == "json"
    assert settings.max_content_length == 1024 * 1024
    assert settings.secret_key.get_secret_value() == TEST_SECRET_KEY
    assert settings.forwarded_allow_ips == ""


@pytest.mark.parametrize("variable", REQUIRED_VARIABLES)
def test_a_missing_required_variable_is_named(
    clean_environment: pytest.MonkeyPatch, variable: str
) -> None:
    message = config_error(clean_environment, **{variable: None})
    assert message == f"{variable} is required but not set"


@pytest.mark.parametrize(
    ("variable", "value", "accepted"),
    [
        ("DATABASE_URL", "mysql://root@localhost/db", "PostgreSQL URL"),
        ("DATABASE_URL", "not a url", "PostgreSQL URL"),
        ("PORT", "eighty", "integer"),
        ("PORT", "70000", "65535"),
        ("WEB_CONCURRENCY", "0", "greater than or equal to 1"),
        ("LOG_FORMAT", "xml", "'json' or 'console'"),
        ("LOG_LEVEL", "loud", "'DEBUG'"),
        ("MAX_CONTENT_LENGTH", "lots", "integer"),
        ("DRAIN_SECONDS", "-1", "greater than or equal to 0"),
        ("DATABASE_LOCK_TIMEOUT", "0", "greater than or equal to 1"),
        ("DATABASE_POOL_SIZE", "none", "integer"),
        ("KEEPALIVE", "0", "greater than or equal to 1"),
        ("WEB_HEADER_TIMEOUT", "0", "greater than or equal to 1"),
        ("WEB_BODY_TIMEOUT", "soon", "integer"),
        ("WEB_CONNECTIONS", "0", "greater than or equal to 1"),
        ("FORWARDED_ALLOW_IPS", "proxy.internal", "IP addresses or networks"),
        ("FORWARDED_ALLOW_IPS", "10.0.0.1/8", "IP addresses or networks"),
    ],
)
def test_a_malformed_variable_is_named_with_what_is_accepted(
    clean_environment: pytest.MonkeyPatch, variable: str, value: str, accepted: str
) -> None:
    message = config_error(clean_environment, **{variable: value})
    assert message.startswith(f"{variable} ")
    assert accepted in message


@pytest.mark.parametrize("secret", ["short", "please-changeme-later", "a" * 40])
def test_a_weak_secret_key_is_refused_without_echoing_it(
    clean_environment: pytest.MonkeyPatch, secret: str
) -> None:
    message = config_error(clean_environment, SECRET_KEY=secret)
    assert message.startswith("SECRET_KEY ")
    assert secret not in message


@pytest.mark.parametrize(
    ("value", "trusted"),
    [("10.0.0.0/8, 127.0.0.1", "10.0.0.0/8,127.0.0.1"), ("*", "*"), (" ", "")],
)
def test_trusted_proxies_are_addresses_networks_or_a_star(
    monkeypatch: pytest.MonkeyPatch, value: str, trusted: str
) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", value)
    assert load_settings().forwarded_allow_ips == trusted


def test_heroku_style_postgres_url_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://user:pw@db.internal:5432/app")
    assert load_settings().database_url == "postgresql+psycopg2://user:pw@db.internal:5432/app"


def test_secrets_can_be_read_from_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret_file = tmp_path / "secret_key"
    secret_file.write_text("a-secret-mounted-as-a-file\n")
    url_file = tmp_path / "database_url"
    url_file.write_text("postgresql://app@db/app\n")
    monkeypatch.delenv("SECRET_KEY")
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("SECRET_KEY_FILE", str(secret_file))
    monkeypatch.setenv("DATABASE_URL_FILE", str(url_file))
    settings = load_settings()
    assert settings.secret_key.get_secret_value() == "a-secret-mounted-as-a-file"
    assert settings.database_url == "postgresql+psycopg2://app@db/app"


def test_a_variable_and_its_file_form_together_are_refused(
    clean_environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret_file = tmp_path / "secret_key"
    secret_file.write_text("another-secret-from-a-file")
    message = config_error(clean_environment, SECRET_KEY_FILE=str(secret_file))
    assert message == "set SECRET_KEY or SECRET_KEY_FILE, not both"


def test_an_unreadable_secret_file_is_named(
    clean_environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    message = config_error(
        clean_environment, SECRET_KEY=None, SECRET_KEY_FILE=str(tmp_path / "missing")
    )
    assert message.startswith("SECRET_KEY_FILE names a file that cannot be read")


def test_a_dotenv_file_is_never_read(clean_environment: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"PORT=1234\nSECRET_KEY={TEST_SECRET_KEY}\n")
    clean_environment.chdir(tmp_path)
    assert load_settings().port == 8000


@pytest.mark.processes
@pytest.mark.parametrize(
    ("process_type", "program"),
    [("web", "gunicorn"), ("release", "alembic")],
)
@pytest.mark.parametrize("variable", REQUIRED_VARIABLES)
def test_processes_stop_at_once_with_one_line_naming_a_missing_variable(
    database_url: str, process_type: str, program: str, variable: str
) -> None:
    environment = service_environment(database_url)
    del environment[variable]
    result = run_process(process_type, environment)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"{program}: configuration error: {variable} is required but not set"
    )
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.processes
def test_a_process_never_prints_the_secret_it_was_given(database_url: str) -> None:
    secret = "do-not-print-me-0123456789"
    environment = service_environment(database_url, SECRET_KEY=secret, PORT="not-a-port")
    result = run_process("web", environment)
    assert result.returncode == 1
    assert "PORT" in result.stderr
    assert secret not in result.stdout + result.stderr


def test_env_example_documents_every_setting() -> None:
    documented = {
        line.lstrip("# ").split("=", 1)[0]
        for line in (PROJECT_ROOT / ".env.example").read_text().splitlines()
        if "=" in line
    }
    settings = {name for name in SERVICE_VARIABLES if not name.endswith("_FILE")}
    assert settings - documented == set()
