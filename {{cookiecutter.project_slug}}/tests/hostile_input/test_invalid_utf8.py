"""Invalid UTF-8 in the path, the query, a header or the body."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from ..processes import RunningService
from .raw_http import (
    BODY_STARTS,
    CHANGE,
    Baseline,
    assert_problem,
    assert_refused_by_gunicorn,
    assert_unharmed,
    exchange,
    json_request,
    message,
)

pytestmark = pytest.mark.processes


INVALID_UTF8 = [
    pytest.param(
        json_request(b"PATCH /api/todos/{id}\xff", CHANGE), 400, False, id="path, raw bytes"
    ),
    pytest.param(json_request(b"PATCH /api/todos/{id}%FF", CHANGE), 404, True, id="path, escaped"),
    pytest.param(message(b"GET /api/todos?cursor=\xff\xfe"), 400, False, id="query, raw bytes"),
    pytest.param(message(b"GET /api/todos?cursor=%FF%FE"), 422, True, id="query cursor, escaped"),
    pytest.param(message(b"GET /api/todos?limit=%FF"), 422, True, id="query limit, escaped"),
    pytest.param(
        json_request(b"PATCH /api/todos/{id}", CHANGE, b"X-\xff: 1"), 400, False, id="header name"
    ),
    pytest.param(
        message(
            b"PATCH /api/todos/{id}",
            b"Content-Type: application/json\xff",
            b"Content-Length: %d" % len(CHANGE),
            body=CHANGE,
        ),
        415,
        True,
        id="content type",
    ),
    *(
        pytest.param(json_request(start, b'{"title": "%s"}' % title), 400, True, id=name)
        for start in BODY_STARTS
        for name, title in [
            (f"{start.split()[0].decode()} body", b"\xff\xfe"),
            (f"{start.split()[0].decode()} body, overlong encoding", b"\xc0\xaf"),
            (f"{start.split()[0].decode()} body, encoded surrogate", b"\xed\xa0\x80"),
        ]
    ),
    pytest.param(
        json_request(b"PATCH /api/todos/{id}", b'{"title": "\\ud800"}'),
        422,
        True,
        id="PATCH body, escaped lone surrogate",
    ),
]


@pytest.mark.parametrize(("request_bytes", "status", "by_app"), INVALID_UTF8)
def test_invalid_utf8_in_path_query_headers_or_body_is_refused_and_changes_nothing(
    service: RunningService,
    database: Engine,
    baseline: Baseline,
    request_bytes: bytes,
    status: int,
    by_app: bool,
) -> None:
    answer = exchange(service, baseline.aimed(request_bytes))
    if by_app:
        assert_problem(answer, status)
    else:
        assert_refused_by_gunicorn(answer, status)
    assert_unharmed(service, database, baseline)
