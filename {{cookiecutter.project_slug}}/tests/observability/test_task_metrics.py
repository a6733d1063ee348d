"""The worker's metrics: a real worker process counts its tasks by outcome and serves the counts
on its METRICS_PORT, summed over the processes of its pool."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from {{ cookiecutter.package_name }}.task_queue.tasks import archive_todo

from ..http_client import http_get
from ..processes import free_port, wait_for
from ..task_queue.celery_workers import worker_process

pytestmark = [pytest.mark.processes, pytest.mark.usefixtures("empty_task_queue")]

COUNT = re.compile(r"^celery_tasks_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$", re.MULTILINE)


def task_counts(port: int) -> dict[tuple[str, str], float]:
    """The worker's task counts as its metrics port serves them, by task and outcome."""
    status, body = http_get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200, body
    counts = {}
    for match in COUNT.finditer(body.decode()):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        counts[labels["task"], labels["outcome"]] = float(match["value"])
    return counts


def test_the_worker_counts_its_tasks_by_outcome_on_its_metrics_port(
    app: Flask, client: FlaskClient, database_url: str, tmp_path: Path
) -> None:
    created = client.post("/api/todos", json={"title": "to archive"})
    assert created.status_code == 201
    todo_id = created.get_json()["id"]
    # The same todo twice (the second run changes nothing, and succeeds all the same), then a
    # task whose argument the database refuses: an error no retry can mend.
    for _ in range(2):
        assert client.post(f"/api/todos/{todo_id}/archive").status_code == 202
    app.extensions["celery"].send_task(archive_todo.name, args=["not a number"])

    port = free_port()
    expected = {(archive_todo.name, "success"): 2.0, (archive_todo.name, "failure"): 1.0}
    with worker_process(
        database_url,
        tmp_path,
        "counted",
        METRICS_PORT=str(port),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
    ) as worker:
        wait_for(lambda: task_counts(port) == expected, f"{expected} at the metrics port")
        assert worker.process.poll() is None


def test_without_a_metrics_port_the_worker_serves_and_keeps_nothing(
    client: FlaskClient, database_url: str, tmp_path: Path
) -> None:
    created = client.post("/api/todos", json={"title": "to archive"})
    todo_id = created.get_json()["id"]
    assert client.post(f"/api/todos/{todo_id}/archive").status_code == 202
    folder = tmp_path / "metrics"
    with worker_process(
        database_url, tmp_path, "uncounted", PROMETHEUS_MULTIPROC_DIR=str(folder)
    ) as worker:
        wait_for(lambda: worker.tasks_done() == 1, "the worker to archive the todo")
    assert not folder.exists()
