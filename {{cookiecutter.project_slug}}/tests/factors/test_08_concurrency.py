"""Concurrency: scale out by process type and count; processes stay in the foreground."""

from __future__ import annotations

from pathlib import Path

import pytest
{%- if cookiecutter.worker == "celery" %}
from flask.testing import FlaskClient
{%- endif %}

from ..support import (
    PROJECT_ROOT,
    child_pids,
    http_get,
    procfile_command,
    service_environment,
    wait_for,
    web_process,
)
{%- if cookiecutter.worker == "celery" %}
from ..workers import worker_process
{%- endif %}

PROCESS_TYPES = {"web", "release"{% if cookiecutter.worker == "celery" %}, "worker"{% endif %}}


@pytest.mark.processes
def test_web_concurrency_sets_the_number_of_worker_processes(
    database_url: str, tmp_path: Path
) -> None:
    environment = service_environment(database_url, WEB_CONCURRENCY="3")
    with web_process(environment, tmp_path) as service:
        wait_for(
            lambda: len(child_pids(service.process.pid)) == 3, "three gunicorn workers", seconds=15
        )
        assert http_get(f"{service.base_url}/healthz")[0] == 200
        # The process we started is the server itself: no daemon, no pid file.
        assert service.process.poll() is None
    assert not list(PROJECT_ROOT.glob("*.pid"))


def test_the_procfile_declares_every_process_type() -> None:
    for process_type in PROCESS_TYPES:
        assert procfile_command(process_type)
    declared = {
        line.partition(":")[0]
        for line in (PROJECT_ROOT / "Procfile").read_text().splitlines()
        if line.strip()
    }
    assert declared == PROCESS_TYPES
{%- if cookiecutter.worker == "celery" %}


def test_two_worker_processes_both_take_tasks(
    client: FlaskClient, database_url: str, tmp_path: Path
) -> None:
    todo_ids = [
        client.post("/api/todos", json={"title": f"todo {number}"}).get_json()["id"]
        for number in range(20)
    ]
    with (
        worker_process(database_url, tmp_path, "one") as one,
        worker_process(database_url, tmp_path, "two") as two,
    ):
        for todo_id in todo_ids:
            assert client.post(f"/api/todos/{todo_id}/archive").status_code == 202
        wait_for(lambda: one.tasks_done() + two.tasks_done() == 20, "all 20 archive tasks")
    assert one.tasks_done() > 0
    assert two.tasks_done() > 0
{%- endif %}
