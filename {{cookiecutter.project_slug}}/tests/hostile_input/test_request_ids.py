"""Forged X-Request-ID headers: never echoed, never logged as given."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import Engine

from ..processes import RunningService, wait_for
from .raw_http import (
    Baseline,
    assert_refused_by_gunicorn,
    assert_unharmed,
    exchange,
    message,
)

# A word in every hostile request id, to look for in the service's log.
FORGED = b"forged"

pytestmark = pytest.mark.processes


HOSTILE_REQUEST_IDS = [
    pytest.param(FORGED + b"x" * 5000, 200, id="5000 characters"),
    pytest.param(b"abc\xff\xfe" + FORGED, 200, id="invalid UTF-8"),
    pytest.param(b'abc", "level": "CRITICAL", "message": "' + FORGED, 200, id="JSON quotes"),
    pytest.param(b"abc%0d%0a" + FORGED, 200, id="escaped CR LF"),
    pytest.param(FORGED + b"x" * 9000, 431, id="over gunicorn's header limit"),
    pytest.param(b"abc\n" + FORGED, 400, id="LF"),
    pytest.param(b"abc\r" + FORGED, 400, id="CR"),
    pytest.param(b'abc\r\n{"level": "CRITICAL", "message": "' + FORGED + b'"}', 400, id="CR LF"),
    pytest.param(b"abc\x00" + FORGED, 400, id="NUL"),
]
GENERATED_REQUEST_ID = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize(("request_id", "status"), HOSTILE_REQUEST_IDS)
def test_a_hostile_request_id_is_never_echoed_or_logged_as_given(
    service: RunningService, database: Engine, baseline: Baseline, request_id: bytes, status: int
) -> None:
    answer = exchange(service, message(b"GET /api/todos", b"X-Request-ID: " + request_id))
    if status < 400:
        # The request itself is fine: it is served under an id of the service's own making.
        assert answer.status == status, answer
        replacement = answer.headers["x-request-id"]
        assert GENERATED_REQUEST_ID.fullmatch(replacement), replacement

        def access_logged() -> bool:
            lines = service.stdout_lines()[baseline.log_lines :]
            return any(json.loads(line).get("request_id") == replacement for line in lines)

        wait_for(access_logged, "the access log line of the request", 5)
    else:
        assert_refused_by_gunicorn(answer, status)
        assert "x-request-id" not in answer.headers
    for line in service.stdout_lines()[baseline.log_lines :]:
        assert isinstance(json.loads(line), dict), line
        assert FORGED.decode() not in line, line
    assert_unharmed(service, database, baseline)
