"""Concurrency of background tasks: more processes of the worker type take more tasks."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from ..processes import wait_for
from ..task_queue.celery_workers import worker_process


@pytest.mark.processes
@pytest.mark.usefixtures("empty_task_queue")
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
