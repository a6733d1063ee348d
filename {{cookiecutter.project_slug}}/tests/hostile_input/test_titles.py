"""Titles with control characters, of any length, or written in SQL."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine

from ..http_client import http_get, http_request
from ..processes import RunningService
from .raw_http import (
    BODY_STARTS,
    Baseline,
    assert_problem,
    assert_unharmed,
    exchange,
    json_request,
    todos_in,
)

pytestmark = pytest.mark.processes


HOSTILE_TITLES = [
    pytest.param("a\x00b", id="NUL"),
    pytest.param("\x1b[31mred\x1b[0m", id="ESC"),
    pytest.param("one\r\ntwo", id="CR LF"),
    pytest.param("one\ntwo", id="LF"),
    pytest.param("title\n", id="trailing LF"),
    pytest.param("one\ttwo", id="TAB"),
    pytest.param("a\x7fb", id="DEL"),
    pytest.param("a\x85b", id="C1 next line"),
    pytest.param("x" * 100_000, id="100 000 characters"),
]


@pytest.mark.parametrize("title", HOSTILE_TITLES)
def test_titles_with_control_characters_or_too_long_are_refused_with_422(
    service: RunningService, database: Engine, baseline: Baseline, title: str
) -> None:
    body = json.dumps({"title": title}).encode()
    for start in BODY_STARTS:
        answer = exchange(service, baseline.aimed(json_request(start, body)))
        assert_problem(answer, 422)
        assert {error["field"].split(".")[0] for error in answer.problem()["errors"]} == {"title"}
        assert_unharmed(service, database, baseline)


def test_a_title_written_in_sql_is_stored_as_plain_text(
    service: RunningService, database: Engine, baseline: Baseline
) -> None:
    title = "'); DROP TABLE todos; --"
    url = f"{service.base_url}/api/todos/{baseline.target['id']}"
    status, body = http_request("PATCH", url, {"title": title})
    assert status == 200, body
    assert json.loads(http_get(url)[1])["title"] == title
    assert todos_in(database) == baseline.todos
