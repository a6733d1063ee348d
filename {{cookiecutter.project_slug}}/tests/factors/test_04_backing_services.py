"""Backing services as attached resources: a new DATABASE_URL is a new database, no code change."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import URL

from ..databases import count_todos, temporary_database
from ..environments import service_environment
from ..http_client import http_get, http_request
from ..processes import web_process

pytestmark = pytest.mark.processes


@pytest.fixture
def second_database(admin_url: URL) -> Iterator[str]:
    """Another migrated database on the same server, dropped after the test."""
    with temporary_database(admin_url, "second", "head") as url:
        yield url


def test_pointing_database_url_elsewhere_serves_from_there(
    database_url: str, second_database: str, tmp_path: Path
) -> None:
    before = count_todos(database_url)
    environment = service_environment(second_database, WEB_CONCURRENCY="1")
    with web_process(environment, tmp_path) as service:
        status, _ = http_request("POST", f"{service.base_url}/api/todos", {"title": "elsewhere"})
        assert status == 201
        _, body = http_get(f"{service.base_url}/api/todos")
    assert [item["title"] for item in json.loads(body)["items"]] == ["elsewhere"]
    assert count_todos(second_database) == 1
    assert count_todos(database_url) == before


def test_a_heroku_style_postgres_url_is_accepted(database_url: str, tmp_path: Path) -> None:
    short_scheme = "postgres://" + database_url.split("://", 1)[1]
    environment = service_environment(short_scheme, WEB_CONCURRENCY="1")
    with web_process(environment, tmp_path) as service:
        assert http_get(f"{service.base_url}/readyz")[0] == 200
