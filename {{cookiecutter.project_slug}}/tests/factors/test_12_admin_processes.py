"""Admin processes: migrations and commands run as one-offs with the app's code and config."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from ..databases import count_todos
from ..environments import service_environment
from ..http_client import http_get, http_request
from ..processes import PROJECT_ROOT, procfile_command, run_flask_command, run_process, web_process

pytestmark = pytest.mark.processes


def schema(database_url: str) -> tuple[set[str], list[str]]:
    """The tables of a database and the Alembic revisions it records."""
    engine = create_engine(database_url)
    try:
        tables = set(inspect(engine).get_table_names())
        revisions: list[str] = []
        if "alembic_version" in tables:
            with engine.connect() as connection:
                revisions = list(
                    connection.scalars(text("SELECT version_num FROM alembic_version"))
                )
        return tables, revisions
    finally:
        engine.dispose()


def test_three_releases_started_at_once_leave_one_correct_schema(empty_database: str) -> None:
    environment = service_environment(empty_database)
    releases = [
        subprocess.Popen(
            procfile_command("release"),
            cwd=PROJECT_ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [release.communicate(timeout=120) for release in releases]
    assert [release.returncode for release in releases] == [0, 0, 0], outputs
    tables, revisions = schema(empty_database)
    assert "todos" in tables
    assert len(revisions) == 1
    upgrades = sum(stdout.count("Running upgrade  ->") for stdout, _ in outputs)
    assert upgrades == 1, "the first revision ran more than once"


def test_release_again_changes_nothing(empty_database: str) -> None:
    environment = service_environment(empty_database)
    assert run_process("release", environment).returncode == 0
    first = schema(empty_database)
    again = run_process("release", environment)
    assert again.returncode == 0
    assert "Running upgrade" not in again.stdout
    assert schema(empty_database) == first


def test_a_one_off_command_sees_what_the_web_process_wrote(
    database_url: str, tmp_path: Path
) -> None:
    environment = service_environment(database_url, WEB_CONCURRENCY="1")
    with web_process(environment, tmp_path) as service:
        status, _ = http_request("POST", f"{service.base_url}/api/todos", {"title": "counted"})
    assert status == 201
    result = run_flask_command(environment, "count-todos")
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip().splitlines()[-1]) == count_todos(database_url) == 1


def test_the_web_process_never_migrates(empty_database: str, tmp_path: Path) -> None:
    environment = service_environment(empty_database, WEB_CONCURRENCY="1")
    with web_process(environment, tmp_path) as service:
        assert http_get(f"{service.base_url}/healthz")[0] == 200
    assert schema(empty_database) == (set(), [])
