"""The option's settings are checked at start like the service's own (factor III): a malformed
value stops every process type with one line naming the variable and what it accepts, and
never repeating the value, which may be a secret (a DSN's key) or a typo of one.

Most values are tried in-process, through the same loader every process calls; one value per
process type is tried on the real process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from {{ cookiecutter.package_name }}.config import (
    ConfigError,
    load_settings,
)
from {{ cookiecutter.package_name }}.observability.settings import (
    ObservabilitySettings,
)

from ..environments import service_environment, start_from_required_variables
from ..processes import WSGI_MODULE, run_flask_command, run_process

# A key that no message can contain by chance, and a DSN that lacks its project id. It is
# fixed: test ids are built from it, and pytest-xdist's workers must collect the same ids.
DSN_KEY = "QkZpXwRvNdTmYhLsJcGbFaEuOyIxWqPe"
DSN_WITHOUT_PROJECT = f"https://{DSN_KEY}@sentry.example.com"

MALFORMED = [
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://x", "must be an http:// or https:// URL"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url", "must be an http:// or https:// URL"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http:///v1/traces", "must be an http:// or https:// URL"),
    ("OTEL_TRACES_SAMPLER", "sometimes", "'parentbased_traceidratio'"),
    ("OTEL_TRACES_SAMPLER_ARG", "1.5", "must be a number from 0 to 1"),
    ("OTEL_TRACES_SAMPLER_ARG", "-0.1", "must be a number from 0 to 1"),
    ("OTEL_TRACES_SAMPLER_ARG", "nan", "must be a number from 0 to 1"),
    ("OTEL_TRACES_SAMPLER_ARG", "abc", "valid number"),
    ("OTEL_RESOURCE_ATTRIBUTES", "novalue", "must be key=value pairs"),
    ("OTEL_RESOURCE_ATTRIBUTES", "=x", "must be key=value pairs"),
    ("OTEL_RESOURCE_ATTRIBUTES", "team=core,novalue", "must be key=value pairs"),
    ("SENTRY_DSN", "not-a-dsn", "must be a Sentry DSN such as https://<key>@<host>/"),
    ("SENTRY_DSN", "https://example.com", "must be a Sentry DSN"),
    ("SENTRY_DSN", DSN_WITHOUT_PROJECT, "must be a Sentry DSN"),
    ("METRICS_PORT", "0", "greater than or equal to 1"),
    ("METRICS_PORT", "70000", "less than or equal to 65535"),
    ("METRICS_ENABLED", "maybe", "valid boolean"),
    ("OTEL_SDK_DISABLED", "perhaps", "valid boolean"),
    ("OTEL_BSP_SCHEDULE_DELAY", "0", "greater than or equal to 1"),
    ("OTEL_SERVICE_NAME", "   ", "at least 1 character"),
    ("SENTRY_ENVIRONMENT", "", "at least 1 character"),
]
# What a flask command calls itself when it refuses to start: the package's name.
PACKAGE = WSGI_MODULE.partition(".")[0]
# Only loaded in-process: reading the settings connects to nothing.
GOOD_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Start each test with only the service's required variables set."""
    start_from_required_variables(monkeypatch, GOOD_URL)
    return monkeypatch


def loaded(monkeypatch: pytest.MonkeyPatch, **variables: str) -> ObservabilitySettings:
    """Set variables, check every settings model as a process does, and read the option's."""
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    load_settings()
    return ObservabilitySettings.load()


def refusal(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> str:
    """The message a process would print, the option's own loader giving the same one."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    with pytest.raises(ConfigError) as caught_alone:
        ObservabilitySettings.load()
    assert str(caught_alone.value) == str(caught.value)
    return str(caught.value)


@pytest.mark.parametrize(("variable", "value", "accepted"), MALFORMED)
def test_a_malformed_value_is_named_with_what_is_accepted_and_not_repeated(
    clean_environment: pytest.MonkeyPatch, variable: str, value: str, accepted: str
) -> None:
    message = refusal(clean_environment, variable, value)
    assert message.startswith(f"{variable} ")
    assert accepted in message
    assert "\n" not in message
    if value.strip():
        assert value not in message


def test_with_none_of_the_variables_set_every_signal_stays_local(
    clean_environment: pytest.MonkeyPatch,
) -> None:
    settings = loaded(clean_environment)
    assert settings.otel_exporter_otlp_endpoint is None
    assert settings.sentry_dsn is None
    assert settings.otel_traces_sampler == "parentbased_always_on"
    assert settings.metrics_enabled
    assert settings.metrics_port is None
    assert settings.prometheus_multiproc_dir is None


def test_a_ratio_sampler_takes_its_share_from_the_argument(
    clean_environment: pytest.MonkeyPatch,
) -> None:
    settings = loaded(
        clean_environment,
        OTEL_TRACES_SAMPLER=" ParentBased_TraceIdRatio ",
        OTEL_TRACES_SAMPLER_ARG="0.1",
    )
    assert settings.otel_traces_sampler == "parentbased_traceidratio"
    assert settings.ratio_sampler
    assert settings.otel_traces_sampler_arg == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"},
            {"otel_exporter_otlp_endpoint": "http://collector:4318"},
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://otel.example.com:4318"},
            {"otel_exporter_otlp_endpoint": "https://otel.example.com:4318"},
        ),
        (
            {"SENTRY_DSN": f" https://{DSN_KEY}@o1.ingest.sentry.example.com/42 "},
            {"sentry_dsn": f"https://{DSN_KEY}@o1.ingest.sentry.example.com/42"},
        ),
        (
            {"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod, team=core,"},
            {"otel_resource_attributes": "deployment.environment=prod, team=core,"},
        ),
        (
            {"METRICS_ENABLED": "false", "METRICS_PORT": "9100"},
            {"metrics_enabled": False, "metrics_port": 9100},
        ),
        (
            {"OTEL_SERVICE_NAME": "  todo-api  ", "SENTRY_ENVIRONMENT": " staging "},
            {"otel_service_name": "todo-api", "sentry_environment": "staging"},
        ),
    ],
    ids=["collector", "https collector", "dsn", "attributes", "metrics port", "names"],
)
def test_well_formed_values_are_accepted(
    clean_environment: pytest.MonkeyPatch, variables: dict[str, str], expected: dict[str, Any]
) -> None:
    settings = loaded(clean_environment, **variables)
    assert {name: getattr(settings, name) for name in expected} == expected


@pytest.mark.parametrize(
    "variable", ["OTEL_EXPORTER_OTLP_ENDPOINT", "SENTRY_DSN", "PROMETHEUS_MULTIPROC_DIR"]
)
def test_an_empty_location_means_unset(
    clean_environment: pytest.MonkeyPatch, variable: str
) -> None:
    # Compose and .env files leave a variable empty to switch its signal off; an empty
    # PROMETHEUS_MULTIPROC_DIR must not become the working directory.
    settings = loaded(clean_environment, **{variable: ""})
    assert getattr(settings, variable.lower()) is None


def test_the_dsn_may_come_from_a_mounted_file(
    clean_environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dsn_file = tmp_path / "sentry_dsn"
    dsn_file.write_text(f"https://{DSN_KEY}@sentry.example.com/7\n")
    settings = loaded(clean_environment, SENTRY_DSN_FILE=str(dsn_file))
    assert settings.sentry_dsn == f"https://{DSN_KEY}@sentry.example.com/7"


def test_a_malformed_dsn_in_a_file_is_refused_without_repeating_it(
    clean_environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dsn_file = tmp_path / "sentry_dsn"
    dsn_file.write_text(f"{DSN_WITHOUT_PROJECT}\n")
    message = refusal(clean_environment, "SENTRY_DSN_FILE", str(dsn_file))
    assert message.startswith("SENTRY_DSN must be a Sentry DSN")
    assert DSN_KEY not in message


@pytest.mark.processes
@pytest.mark.parametrize(
    ("process_type", "program", "variable", "value", "accepted"),
    [
        ("web", "gunicorn", "OTEL_TRACES_SAMPLER_ARG", "1.5", "must be a number from 0 to 1"),
        ("release", "alembic", "SENTRY_DSN", DSN_WITHOUT_PROJECT, "must be a Sentry DSN"),
        ("flask", PACKAGE, "OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://x", "http:// or https://"),
    ],
    ids=["web", "release", "flask command"],
)
def test_every_process_type_stops_at_once_with_one_line_naming_the_variable(
    database_url: str, process_type: str, program: str, variable: str, value: str, accepted: str
) -> None:
    environment = service_environment(database_url, **{variable: value})
    if process_type == "flask":
        result = run_flask_command(environment, "count-todos")
    else:
        # Bounded: a process that fails to refuse the value would serve until stopped.
        result = run_process(process_type, environment, timeout=30)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{program}: configuration error: {variable} ")
    assert accepted in lines[0]
    assert value not in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
