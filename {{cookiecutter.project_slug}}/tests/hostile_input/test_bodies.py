"""Bodies that are not JSON objects, framed wrongly, cut short or too big."""

from __future__ import annotations

import socket

import pytest
from sqlalchemy import Engine

from ..processes import RunningService
from .raw_http import (
    ANSWER_SECONDS,
    BODY_STARTS,
    CHANGE,
    MAX_CONTENT_LENGTH,
    WAITING_SECONDS,
    Baseline,
    assert_problem,
    assert_refused_by_gunicorn,
    assert_unharmed,
    chunk,
    chunked_request,
    connect,
    exchange,
    json_request,
    message,
    read_answer,
    todos_in,
)

pytestmark = pytest.mark.processes


BAD_JSON = [
    pytest.param(b'{"title": "cut', 400, id="truncated"),
    pytest.param(b"", 400, id="empty"),
    pytest.param(b"[" * 100_000, 400, id="100 000 [ deep"),
    pytest.param(b'{"a": ' * 50_000 + b"1" + b"}" * 50_000, 400, id="50 000 objects deep"),
    pytest.param(b'{"title": "first", "title": "second"}', 400, id="duplicate keys"),
    pytest.param(b'{"title": "x", "done": false, "done": true}', 400, id="duplicate flag"),
    pytest.param(b'{"title": "x", "done": NaN}', 400, id="NaN"),
    pytest.param(b'{"title": "x", "done": -Infinity}', 400, id="Infinity"),
    # Python reads no integer of more than 4300 digits: the body cannot be read, hence 400.
    pytest.param(b'{"title": "x", "done": ' + b"9" * 5000 + b"}", 400, id="5000-digit number"),
    pytest.param(b'{"title": 1e999}', 422, id="1e999 title"),
    pytest.param(b'{"title": "x", "done": 1e999}', 422, id="1e999 flag"),
    pytest.param(b"42", 422, id="number"),
    pytest.param(b'"a title"', 422, id="string"),
    pytest.param(b"null", 422, id="null"),
    pytest.param(b"false", 422, id="false"),
    pytest.param(b"[]", 422, id="empty array"),
    pytest.param(b'[{"title": "x"}]', 422, id="array"),
]


@pytest.mark.parametrize(("body", "status"), BAD_JSON)
def test_json_that_is_malformed_ambiguous_or_not_an_object_is_refused_by_post_and_patch(
    service: RunningService, database: Engine, baseline: Baseline, body: bytes, status: int
) -> None:
    for start in BODY_STARTS:
        assert_problem(exchange(service, baseline.aimed(json_request(start, body))), status)
        assert_unharmed(service, database, baseline)


BODY_CUT_SHORT = [
    pytest.param(
        message(
            b"PATCH /api/todos/{id}",
            b"Content-Type: application/json",
            b"Content-Length: %d" % (len(CHANGE) + 50),
            body=CHANGE,
        ),
        id="Content-Length more than sent",
    ),
    pytest.param(
        chunked_request(b"PATCH /api/todos/{id}", b"%x\r\n" % (len(CHANGE) + 50) + CHANGE, end=b""),
        id="chunk shorter than its size",
    ),
]


@pytest.mark.parametrize("request_bytes", BODY_CUT_SHORT)
def test_a_body_cut_short_is_awaited_then_refused_never_taken_as_whole(
    service: RunningService, database: Engine, baseline: Baseline, request_bytes: bytes
) -> None:
    with connect(service) as connection:
        connection.sendall(baseline.aimed(request_bytes))
        # The rest of the body may still be on its way: the server waits for it.
        connection.settimeout(WAITING_SECONDS)
        with pytest.raises(TimeoutError):
            connection.recv(1)
        # It never comes: the client is done sending, and what came is not the whole body.
        connection.shutdown(socket.SHUT_WR)
        connection.settimeout(ANSWER_SECONDS)
        assert_problem(read_answer(connection), 400)
    assert_unharmed(service, database, baseline)


BAD_FRAMING = [
    pytest.param(
        message(
            b"PATCH /api/todos/{id}",
            b"Content-Type: application/json",
            b"Content-Length: 5",
            body=CHANGE,
        ),
        id="Content-Length less than sent",
    ),
    pytest.param(
        message(b"PATCH /api/todos/{id}", b"Content-Type: application/json", body=CHANGE),
        id="no Content-Length",
    ),
    pytest.param(
        chunked_request(b"PATCH /api/todos/{id}", b"zz\r\n" + CHANGE + b"\r\n"),
        id="chunk size not a number",
    ),
    pytest.param(
        chunked_request(b"PATCH /api/todos/{id}", b"%x\r\n%s!!" % (len(CHANGE), CHANGE)),
        id="chunk without its CRLF",
    ),
]


@pytest.mark.parametrize("request_bytes", BAD_FRAMING)
def test_a_body_framed_wrongly_is_refused_and_changes_nothing(
    service: RunningService, database: Engine, baseline: Baseline, request_bytes: bytes
) -> None:
    assert_problem(exchange(service, baseline.aimed(request_bytes)), 400)
    assert_unharmed(service, database, baseline)


def padded_to(size: int) -> bytes:
    """A valid todo, padded with JSON whitespace to exactly size bytes."""
    body = b'{"title": "padded"}'
    return body + b" " * (size - len(body))


@pytest.mark.parametrize("framing", ["Content-Length", "chunked"])
def test_a_body_over_max_content_length_is_refused_with_413(
    service: RunningService, database: Engine, baseline: Baseline, framing: str
) -> None:
    body = padded_to(MAX_CONTENT_LENGTH + 1)
    if framing == "chunked":
        request = chunked_request(b"POST /api/todos", chunk(body))
    else:
        request = json_request(b"POST /api/todos", body)
    assert_problem(exchange(service, request), 413)
    assert_unharmed(service, database, baseline)


def test_a_chunked_body_of_exactly_max_content_length_is_accepted(
    service: RunningService, database: Engine
) -> None:
    request = chunked_request(b"POST /api/todos", chunk(padded_to(MAX_CONTENT_LENGTH)))
    answer = exchange(service, request)
    assert answer.status == 201, answer
    assert todos_in(database) == 1


CONFLICTING_FRAMING = [
    b"Content-Length: -1",
    b"Content-Length: %d\r\nContent-Length: 5" % len(CHANGE),
    b"Content-Length: 5\r\nTransfer-Encoding: chunked",
    b"Transfer-Encoding: identity",
]


def test_conflicting_framing_headers_are_refused_by_gunicorn_without_losing_a_worker(
    service: RunningService, database: Engine, baseline: Baseline
) -> None:
    for framing in CONFLICTING_FRAMING:
        request = message(
            b"PATCH /api/todos/{id}", b"Content-Type: application/json", framing, body=CHANGE
        )
        assert_refused_by_gunicorn(exchange(service, baseline.aimed(request)), 400)
        assert_unharmed(service, database, baseline)
