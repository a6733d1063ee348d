"""Stateless processes: two web processes share nothing but the database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ..environments import service_environment
from ..http_client import http_get, http_request
from ..processes import web_process

pytestmark = pytest.mark.processes


def todo(url: str) -> dict[str, Any]:
    """GET a todo; fail unless it is there."""
    status, body = http_get(url)
    assert status == 200, body
    found: dict[str, Any] = json.loads(body)
    return found


def test_a_todo_written_through_one_process_is_read_through_another(
    database_url: str, tmp_path: Path
) -> None:
    environment = service_environment(database_url, WEB_CONCURRENCY="2")
    with web_process(environment, tmp_path) as first, web_process(environment, tmp_path) as second:
        status, body = http_request("POST", f"{first.base_url}/api/todos", {"title": "shared"})
        assert status == 201
        todo_id = json.loads(body)["id"]
        # Read it through every worker of both processes, so a cache anywhere would fill...
        for service in (first, second) * 4:
            assert todo(f"{service.base_url}/api/todos/{todo_id}")["title"] == "shared"
        status, _ = http_request("PATCH", f"{second.base_url}/api/todos/{todo_id}", {"done": True})
        assert status == 200
        # ...and then show the old state here.
        for service in (first, second) * 4:
            assert todo(f"{service.base_url}/api/todos/{todo_id}")["done"] is True


def test_a_restarted_process_has_lost_nothing(database_url: str, tmp_path: Path) -> None:
    environment = service_environment(database_url, WEB_CONCURRENCY="1")
    with web_process(environment, tmp_path) as service:
        _, body = http_request("POST", f"{service.base_url}/api/todos", {"title": "durable"})
    todo_id = json.loads(body)["id"]
    with web_process(environment, tmp_path) as restarted:
        status, body = http_get(f"{restarted.base_url}/api/todos/{todo_id}")
    assert status == 200
    assert json.loads(body)["title"] == "durable"
