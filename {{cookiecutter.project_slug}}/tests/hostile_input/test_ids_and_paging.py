"""Ids, limits and cursors out of range or not numbers at all."""

from __future__ import annotations

import base64
import json

import pytest
from sqlalchemy import Engine

from ..http_client import http_get
from ..option_tests import OPTION_TESTS
from ..processes import RunningService
from .raw_http import (
    CHANGE,
    Baseline,
    assert_problem,
    assert_unharmed,
    exchange,
    json_request,
    message,
)

pytestmark = pytest.mark.processes


ID_ROUTES = [
    b"GET /api/todos/%s",
    b"DELETE /api/todos/%s",
    b"PATCH /api/todos/%s",
    *(route for option in OPTION_TESTS for route in option.todo_routes),
]


def arabic_indic(number: int) -> bytes:
    """A number in Arabic-Indic digits, percent-encoded as UTF-8 for a URL path."""
    digits = "".join(chr(0x660 + int(digit)) for digit in str(number)).encode()
    return "".join(f"%{byte:02X}" for byte in digits).encode()


BAD_IDS = [
    pytest.param(b"-1", id="negative"),
    pytest.param(b"%d" % 2**63, id="2**63"),
    pytest.param(b"%d" % 10**30, id="10**30"),
    pytest.param(b"9" * 4000, id="4000 digits"),
    pytest.param(b"abc", id="letters"),
    pytest.param(b"1.5", id="fraction"),
    pytest.param(b"1e3", id="exponent"),
    pytest.param(b"0x1", id="hex"),
    pytest.param(b"%201", id="space"),
    pytest.param(b"{id}%00", id="the target's id and NUL"),
    pytest.param(b"{arabic-indic id}", id="the target's id in Arabic-Indic digits"),
]


@pytest.mark.parametrize("todo_id", BAD_IDS)
def test_ids_that_are_negative_huge_or_not_numbers_find_nothing_on_any_route(
    service: RunningService, database: Engine, baseline: Baseline, todo_id: bytes
) -> None:
    todo_id = todo_id.replace(b"{arabic-indic id}", arabic_indic(baseline.target["id"]))
    for route in ID_ROUTES:
        request = json_request(route % todo_id, CHANGE)
        assert_problem(exchange(service, baseline.aimed(request)), 404)
        assert_unharmed(service, database, baseline)


def cursor_of(position: str) -> bytes:
    """A cursor in the service's own encoding around a position it never issued."""
    return base64.urlsafe_b64encode(position.encode()).rstrip(b"=")


BAD_PAGING = [
    *(
        pytest.param(b"limit=" + limit, id=f"limit {name}")
        for name, limit in [
            ("-1", b"-1"),
            ("0", b"0"),
            ("101", b"101"),
            ("2**63", b"%d" % 2**63),
            ("10**30", b"%d" % 10**30),
            ("letters", b"abc"),
            ("fraction", b"1.5"),
            ("exponent", b"1e2"),
            ("empty", b""),
            ("NUL", b"%00"),
            ("given twice", b"1&limit=2"),
        ]
    ),
    *(
        pytest.param(b"cursor=" + cursor, id=f"cursor {name}")
        for name, cursor in [
            ("empty", b""),
            ("garbage", b"garbage!"),
            ("NUL", b"%00"),
            ("300 characters", b"A" * 300),
            ("base64 of text", cursor_of("not a cursor")),
            ("without a time zone", cursor_of("2026-01-01T00:00:00|1")),
            ("past year 9999 in UTC", cursor_of("9999-12-31T23:59:59-14:00|1")),
            ("negative id", cursor_of("2026-01-01T00:00:00+00:00|-1")),
            ("id not in ASCII digits", cursor_of("2026-01-01T00:00:00+00:00|\u0661")),
            ("id with underscores", cursor_of("2026-01-01T00:00:00+00:00|1_000")),
        ]
    ),
]


@pytest.mark.parametrize("query", BAD_PAGING)
def test_limits_and_cursors_that_are_out_of_range_or_garbage_are_refused_with_422(
    service: RunningService, database: Engine, baseline: Baseline, query: bytes
) -> None:
    answer = exchange(service, message(b"GET /api/todos?" + query))
    assert_problem(answer, 422)
    assert [error["field"] for error in answer.problem()["errors"]] in (["limit"], ["cursor"])
    assert_unharmed(service, database, baseline)


@pytest.mark.parametrize("offset", ["+23:59", "-23:59"])
def test_a_cursor_at_an_offset_postgresql_refuses_still_pages_from_that_moment(
    service: RunningService, database: Engine, baseline: Baseline, offset: str
) -> None:
    cursor = cursor_of(f"2999-01-01T00:00:00{offset}|1").decode()
    status, body = http_get(f"{service.base_url}/api/todos?cursor={cursor}")
    assert (status, json.loads(body)["items"]) == (200, [baseline.target])
    assert_unharmed(service, database, baseline)
