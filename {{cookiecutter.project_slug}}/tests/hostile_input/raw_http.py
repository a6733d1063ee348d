"""Raw HTTP over sockets, and the checks every hostile request must pass."""

from __future__ import annotations

import contextlib
import json
import socket
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from ..http_client import http_get, http_request
from ..processes import RunningService

PROBLEM = "application/problem+json"
WORKERS = 2
MAX_CONTENT_LENGTH = 1024 * 1024
# Ample for any answer from a process on this machine, and short enough to keep these tests quick.
ANSWER_SECONDS = 5.0
# How long a request whose body never arrives must have been left waiting, unanswered.
WAITING_SECONDS = 0.5
# The body of every request that would change the target, were it let through.
CHANGE = b'{"title": "changed"}'
# The requests that carry a todo: a new one, and a change to the target.
BODY_STARTS = (b"POST /api/todos", b"PATCH /api/todos/{id}")


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
    return parse_answer(bytes(received))


def read_one_answer(connection: socket.socket) -> Answer:
    """Read one answer on a connection the server keeps open: its head, then its body, as
    long as its Content-Length says."""
    received = bytearray()
    while b"\r\n\r\n" not in received and (data := connection.recv(65536)):
        received += data
    answer = parse_answer(bytes(received))
    length = int(answer.headers.get("content-length", "0"))
    while len(received) - len(received.partition(b"\r\n\r\n")[0]) - 4 < length and (
        data := connection.recv(65536)
    ):
        received += data
    return parse_answer(bytes(received))


def parse_answer(received: bytes) -> Answer:
    """An answer's status, headers and body, from its bytes."""
    head, _, body = received.partition(b"\r\n\r\n")
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


def todos_in(database: Engine) -> int:
    """How many todos there are (support.count_todos, on a pool kept for the package)."""
    with database.connect() as connection:
        return int(connection.scalar(text("SELECT count(*) FROM todos")) or 0)


def assert_problem(answer: Answer, status: int) -> None:
    """The app refused the request with this status, in a problem document."""
    assert answer.status == status, answer
    assert answer.headers.get("content-type") == PROBLEM, answer
    problem = answer.problem()
    assert problem["status"] == status
    assert {"type", "title", "detail"} <= problem.keys()


def assert_refused_by_gunicorn(answer: Answer, status: int) -> None:
    """gunicorn's parser refused the request before the app saw it, and closed the connection;
    its answer is a problem document all the same (web_server/answers.py), with no echo of
    the input."""
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
