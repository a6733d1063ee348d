"""Stateless processes: two web processes share nothing but the database."""

from __future__ import annotations

import json
from pathlib import Path

from ..support import http_get, http_request, service_environment, web_process


def test_a_todo_written_through_one_process_is_read_through_another(
    database_url: str, tmp_path: Path
) -> None:
    environment = service_environment(database_url, WEB_CONCURRENCY="2")
    with web_process(environment, tmp_path) as first, web_process(environment, tmp_path) as second:
        status, body = http_request("POST", f"{first.base_url}/api/todos", {"title": "shared"})
        assert status == 201
        todo_url = json.loads(body)["id"]
        status, body = http_get(f"{second.base_url}/api/todos/{todo_url}")
        assert status == 200
        assert json.loads(body)["title"] == "shared"
        patch = {"done": True}
        assert http_request("PATCH", f"{second.base_url}/api/todos/{todo_url}", patch)[0] == 200
        # Every worker of the first process sees the change, whichever serves each read.
        for _ in range(6):
            assert json.loads(http_get(f"{first.base_url}/api/todos/{todo_url}")[1])["done"]


def test_a_restarted_process_has_lost_nothing(database_url: str, tmp_path: Path) -> None:
    environment = service_environment(database_url, WEB_CONCURRENCY="1")
    with web_process(environment, tmp_path) as service:
        _, body = http_request("POST", f"{service.base_url}/api/todos", {"title": "durable"})
    todo_id = json.loads(body)["id"]
    with web_process(environment, tmp_path) as restarted:
        status, body = http_get(f"{restarted.base_url}/api/todos/{todo_id}")
    assert status == 200
    assert json.loads(body)["title"] == "durable"
