"""One-off admin commands run with the service's own code and configuration."""

from __future__ import annotations

import pytest

from .environments import TEST_SECRET_KEY, service_environment
from .processes import run_flask_command

pytestmark = pytest.mark.processes


def test_show_config_prints_settings_with_secrets_masked(database_url: str) -> None:
    password_url = database_url.replace("postgres@", "postgres:hunter2-password@", 1)
    result = run_flask_command(service_environment(password_url), "show-config")
    assert result.returncode == 0, result.stderr
    lines = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert lines["PORT"] == "8000"
    assert "hunter2-password" not in result.stdout
    assert TEST_SECRET_KEY not in result.stdout
    assert lines["SECRET_KEY"] == "**********"


def test_count_todos_reads_the_configured_database(database_url: str) -> None:
    result = run_flask_command(service_environment(database_url), "count-todos")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "0"
