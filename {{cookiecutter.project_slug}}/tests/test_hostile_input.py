"""Hostile input, class by class, sent to the real web process over raw sockets (an HTTP
client would refuse to send most of it): each request is refused with a 4xx, changes nothing,
and leaves the service serving as before.

Where gunicorn's parser refuses a request (bytes that are not HTTP), the app never sees it and
gunicorn answers on its own, with the problem document gunicorn.conf.py gives it; every other
refusal is the app's.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from .support import (
    OPTION_TESTS,
    RunningService,
    child_pids,
    http_get,
    http_request,
    service_environment,
    wait_for,
    web_process,
)

pytestmark = pytest.mark.processes

PROBLEM = "application/problem+json"
WORKERS = 2
MAX_CONTENT_LENGTH = 1024 * 1024
# Ample for any answer from a process on this machine, and short enough to keep the module quick.
ANSWER_SECONDS = 5.0
# How long a request whose body never arrives must have been left waiting, unanswered.
WAITING_SECONDS = 0.5
# The body of every request that would change the target, were it let through.
CHANGE = b'{"title": "changed"}'
# The requests that carry a todo: a new one, and a change to the target.
BODY_STARTS = (b"POST /api/todos", b"PATCH /api/todos/{id}")
# A word in every hostile request id, to look for in the service's log.
FORGED = b"forged"


@dataclass
class Answer:
    """What came back on one connection: status (0 if none), headers (names lower-cased), body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def problem(self) -> dict[str, Any]:
        """The body as a problem document."""
        document: dict[str, Any] = json.loads(self.body)
        return document


@dataclass
class Baseline:
    """What a hostile request must leave as it was: the rows, a target todo, the workers."""

    todos: int
    target: dict[str, Any]
    workers: set[int]
    log_lines: int

    def aimed(self, request: bytes) -> bytes:
        """The request with {id} replaced by the target's id."""
        return request.replace(b"{id}", str(self.target["id"]).encode())


def message(start: bytes, *fields: bytes, body: bytes = b"") -> bytes:
    """An HTTP/1.1 request, byte for byte as given; the server closes the connection after it."""
    head = [start + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close", *fields]
    return b"\r\n".join([*head, b"", body])


def json_request(start: bytes, body: bytes, *fields: bytes) -> bytes:
    """A JSON body framed by a true Content-Length."""
    framing = b"Content-Length: %d" % len(body)
    return message(start, b"Content-Type: application/json", framing, *fields, body=body)


def chunked_request(start: bytes, *chunks: bytes, end: bytes = b"0\r\n\r\n") -> bytes:
    """A JSON body sent in chunks, each given as its raw bytes (size line included)."""
    framing = b"Transfer-Encoding: chunked"
    return message(start, b"Content-Type: application/json", framing, body=b"".join([*chunks, end]))


def chunk(data: bytes) -> bytes:
    """One well-formed chunk."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def connect(service: RunningService) -> socket.socket:
    """A fresh connection to the service."""
    port = int(service.base_url.rsplit(":", 1)[1])
    return socket.create_connection(("127.0.0.1", port), ANSWER_SECONDS)


def read_answer(connection: socket.socket) -> Answer:
    """Read until the server closes the connection, and parse what came."""
    received = bytearray()
    # A server that refuses a body before reading it may reset the connection after its answer.
    with contextlib.suppress(ConnectionResetError):
        while data := connection.recv(65536):
            received += data
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    if not head:
        return Answer(0, {}, b"")
    status_line, *fields = head.decode("latin-1").split("\r\n")
    headers = {}
    for field in fields:
        name, _, value = field.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(int(status_line.split()[1]), headers, body)


def exchange(service: RunningService, request: bytes) -> Answer:
    """Send raw bytes on a fresh connection to the service and read its whole answer."""
    with connect(service) as connection:
        # The server may answer (a 413, say) and close before it has read all we send.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.sendall(request)
        return read_answer(connection)


def is_running(pid: int) -> bool:
    """Whether a process exists and is not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def service(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    """One web process for the module, started from the Procfile and stopped by its PID."""
    environment = service_environment(
        database_url, WEB_CONCURRENCY=str(WORKERS), MAX_CONTENT_LENGTH=str(MAX_CONTENT_LENGTH)
    )
    with web_process(environment, tmp_path_factory.mktemp("hostile")) as running:
        yield running


@pytest.fixture(scope="module")
def database(database_url: str) -> Iterator[Engine]:
    """The test's own connections to the service's database, to count rows with."""
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


def todos_in(database: Engine) -> int:
    """How many todos there are (support.count_todos, on a pool kept for the module)."""
    with database.connect() as connection:
        return int(connection.scalar(text("SELECT count(*) FROM todos")) or 0)


@pytest.fixture(scope="module")
def workers() -> set[int]:
    """The web workers' PIDs as last seen (scanning /proc for them is slow, so it is kept)."""
    return set()


@pytest.fixture
def baseline(service: RunningService, database: Engine, workers: set[int]) -> Baseline:
    """A todo to aim at, created normally, and the state a hostile request must not change."""

    def all_workers_up() -> bool:
        workers.clear()
        workers.update(pid for pid in child_pids(service.process.pid) if is_running(pid))
        return len(workers) == WORKERS

    # After a worker died (in an earlier test), wait for gunicorn to replace it.
    if len(workers) != WORKERS or not all(map(is_running, workers)):
        wait_for(all_workers_up, f"{WORKERS} web workers", 10)
    status, body = http_request("POST", f"{service.base_url}/api/todos", {"title": "target"})
    assert status == 201, body
    target = json.loads(body)
    return Baseline(todos_in(database), target, set(workers), len(service.stdout_lines()))


def assert_problem(answer: Answer, status: int) -> None:
    """The app refused the request with this status, in a problem document."""
    assert answer.status == status, answer
    assert answer.headers.get("content-type") == PROBLEM, answer
    problem = answer.problem()
    assert problem["status"] == status
    assert {"type", "title", "detail"} <= problem.keys()


def assert_refused_by_gunicorn(answer: Answer, status: int) -> None:
    """gunicorn's parser refused the request before the app saw it, and closed the connection;
    its answer is a problem document all the same (gunicorn.conf.py), with no echo of the input."""
    assert_problem(answer, status)
    assert answer.headers.get("connection") == "close", answer
    assert answer.headers.get("x-content-type-options") == "nosniff", answer
    assert answer.problem()["detail"] == HTTPStatus(status).description


def assert_unharmed(service: RunningService, database: Engine, before: Baseline) -> None:
    """Nothing changed, no worker died, and the service reads and creates as normal.

    The todo created here counts in `before` from now on.
    """
    assert todos_in(database) == before.todos
    status, body = http_get(f"{service.base_url}/api/todos/{before.target['id']}")
    assert (status, json.loads(body)) == (200, before.target)
    assert service.process.poll() is None, f"the web process exited; see {service.stdout_path}"
    died = {pid for pid in before.workers if not is_running(pid)}
    assert not died, f"web workers {died} died; see {service.stdout_path}"
    assert http_get(f"{service.base_url}/healthz")[0] == 200
    status, body = http_request("POST", f"{service.base_url}/api/todos", {"title": "normal"})
    assert status == 201, body
    before.todos += 1


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
