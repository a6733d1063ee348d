"""Build, release, run: the release id is reported and logged; running writes no code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..environments import service_environment
from ..http_client import http_get
from ..processes import PROJECT_ROOT, run_process, web_process

pytestmark = pytest.mark.processes

RELEASE = "2026.11.29-abc1234"
CODE_DIRECTORIES = ("src", "migrations")


def code_tree_state() -> dict[str, tuple[int, int]]:
    """Size and modification time of every file of the code (the build), by path."""
    paths = [
        path for directory in CODE_DIRECTORIES for path in (PROJECT_ROOT / directory).rglob("*")
    ]
    paths += [path for path in PROJECT_ROOT.iterdir() if path.is_file()]
    return {
        str(path.relative_to(PROJECT_ROOT)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in paths
        if path.is_file()
    }


def test_release_id_is_reported_at_version_and_on_every_log_line(
    database_url: str, tmp_path: Path
) -> None:
    environment = service_environment(database_url, RELEASE_ID=RELEASE, WEB_CONCURRENCY="1")
    with web_process(environment, tmp_path) as service:
        status, body = http_get(f"{service.base_url}/version")
        http_get(f"{service.base_url}/api/todos")
    assert status == 200
    assert json.loads(body)["release"] == RELEASE
    events = [json.loads(line) for line in service.stdout_lines()]
    assert events
    assert {event["release"] for event in events} == {RELEASE}


def test_running_release_and_web_writes_nothing_into_the_code(
    database_url: str, tmp_path: Path
) -> None:
    before = code_tree_state()
    environment = service_environment(
        database_url, WEB_CONCURRENCY="1", PYTHONDONTWRITEBYTECODE="1"
    )
    assert run_process("release", environment).returncode == 0
    with web_process(environment, tmp_path) as service:
        http_get(f"{service.base_url}/api/todos")
        http_get(f"{service.base_url}/readyz")
    assert code_tree_state() == before
