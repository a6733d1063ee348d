"""Pooled connections: the database can end them (a restart, an operator, a failover) and
the service replaces them before any request uses one, without restarting, and without a
query per request to find out (db.refuse_dead_connection)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from .environments import service_environment
from .http_client import http_get, http_request
from .processes import web_process

pytestmark = pytest.mark.processes

# The service's connections carry this name, so the test ends theirs and nobody else's.
APPLICATION_NAME = "connections-under-test"


def end_service_connections(database_url: str) -> int:
    """End every backend serving the service, as a database restart would; wait until each
    is gone. How many there were."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            ended = connection.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity"
                    " WHERE application_name = :name"
                ),
                {"name": APPLICATION_NAME},
            )
    finally:
        engine.dispose()
    return int(ended or 0)


def test_connections_the_database_ended_are_replaced_before_a_request_uses_them(
    database_url: str, tmp_path: Path
) -> None:
    service_url = make_url(database_url).update_query_dict({"application_name": APPLICATION_NAME})
    environment = service_environment(
        service_url.render_as_string(hide_password=False), WEB_CONCURRENCY="2"
    )
    with web_process(environment, tmp_path) as service:
        status, body = http_request("POST", f"{service.base_url}/api/todos", {"title": "kept"})
        assert status == 201, body
        todo_url = f"{service.base_url}/api/todos/{json.loads(body)['id']}"
        # Enough reads that both workers hold a pooled connection.
        assert {http_get(todo_url)[0] for _ in range(10)} == {200}

        assert end_service_connections(database_url) >= 1

        reads = [http_get(todo_url)[0] for _ in range(10)]
        write = http_request("PATCH", todo_url, {"done": True})[0]
        ready = http_get(f"{service.base_url}/readyz")[0]
        assert (reads, write, ready) == ([200] * 10, 200, 200)
        # Replaced, not restarted: the same process answered throughout.
        assert service.process.poll() is None
