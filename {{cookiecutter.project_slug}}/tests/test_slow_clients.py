"""Clients that send their requests slowly cannot take the web process down.

A hundred connections that trickle their headers or their bodies, from 127.0.0.1, are held
open beside ordinary requests, which must all be answered within a second while no worker
is killed. Then each deadline is shown to cut off a client that is too slow, and to serve
one that is slow but within it.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .databases import count_todos
from .environments import service_environment
from .hostile_input.raw_http import (
    Answer,
    assert_problem,
    connect,
    read_answer,
    read_one_answer,
)
from .http_client import http_get, http_request
from .processes import RunningService, web_process

pytestmark = pytest.mark.processes

SLOW_CLIENTS = 100
# Each slow client sends one more byte or header line this often.
TRICKLE_SECONDS = 0.5
ORDINARY_REQUESTS = 30
ANSWER_WITHIN_SECONDS = 1.0
# The deadlines of the service the deadline tests start. Keep-alive is longer than the
# header deadline by more than the slack a busy machine may add, so each test tells which
# of the two cut its client off.
DEADLINE_SECONDS = 1
KEEPALIVE_SECONDS = 4
SLACK_SECONDS = 2.5
SLOW_BODY_LENGTH = 100


def port_of(service: RunningService) -> int:
    """The port the service listens on."""
    return int(service.base_url.rsplit(":", 1)[1])


def slow_head(index: int) -> bytes:
    """The start of a request whose headers never end."""
    return b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow-%d: 0\r\n" % index


def slow_body_head() -> bytes:
    """The head of a POST whose body never arrives in full."""
    return (
        b"POST /api/todos HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n{" % SLOW_BODY_LENGTH
    )


class SlowClients:
    """Connections that each send a request's head or body a little at a time, from a thread
    of their own, until stopped; every socket is closed at the end."""

    def __init__(self, port: int, count: int) -> None:
        self.connections: list[socket.socket] = []
        self.cut_off = 0
        self.stopping = threading.Event()
        for index in range(count):
            connection = socket.create_connection(("127.0.0.1", port), timeout=5)
            connection.sendall(slow_head(index) if index % 2 == 0 else slow_body_head())
            connection.setblocking(False)
            self.connections.append(connection)
        self.thread = threading.Thread(target=self._trickle, daemon=True)

    def _trickle(self) -> None:
        rounds = 0
        while not self.stopping.wait(TRICKLE_SECONDS):
            rounds += 1
            for index, connection in enumerate(self.connections):
                more = b"X-More-%d: %d\r\n" % (rounds, rounds) if index % 2 == 0 else b" "
                # Full (the server reads no more of it yet) or closed (cut off): either way,
                # still_open tells at the end.
                with contextlib.suppress(OSError):
                    connection.send(more)

    def still_open(self) -> int:
        """How many of the connections the server has neither answered nor closed."""
        open_count = 0
        for connection in self.connections:
            try:
                connection.recv(1, socket.MSG_PEEK)
            except BlockingIOError:
                open_count += 1  # nothing to read: still waiting for the rest of the request
            except OSError:
                pass
        return open_count

    def __enter__(self) -> SlowClients:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        for connection in self.connections:
            connection.close()


def timed_get(url: str) -> tuple[int, float]:
    """GET a URL, giving up at twice the bound; the status (0 if none) and how long it took."""
    started = time.monotonic()
    try:
        status, _ = http_request("GET", url, timeout=ANSWER_WITHIN_SECONDS * 2)
    except OSError:
        status = 0
    return status, time.monotonic() - started


def test_ordinary_requests_are_answered_within_a_second_beside_a_hundred_slow_clients(
    database_url: str, tmp_path: Path
) -> None:
    environment = service_environment(database_url, WEB_CONCURRENCY="2")
    with web_process(environment, tmp_path) as service:
        status, body = http_request("POST", f"{service.base_url}/api/todos", {"title": "seen"})
        assert status == 201, body
        todo_url = f"{service.base_url}/api/todos/{json.loads(body)['id']}"
        urls = [f"{service.base_url}/healthz", f"{service.base_url}/api/todos", todo_url]
        with SlowClients(port_of(service), SLOW_CLIENTS) as slow:
            time.sleep(TRICKLE_SECONDS * 2)  # every slow client has been served bytes of its own
            answers = [timed_get(urls[index % len(urls)]) for index in range(ORDINARY_REQUESTS)]
            held = slow.still_open()
        recovered = timed_get(f"{service.base_url}/healthz")
        log = service.stdout_path.read_text()
    slowest = max(seconds for _, seconds in answers)
    print(f"{ORDINARY_REQUESTS} requests beside {held} slow clients; slowest {slowest:.3f} s")
    late = [
        (status, round(seconds, 3))
        for status, seconds in answers
        if status != 200 or seconds >= ANSWER_WITHIN_SECONDS
    ]
    assert not late, f"{len(late)} of {ORDINARY_REQUESTS} not answered 200 within 1 s: {late}"
    assert held == SLOW_CLIENTS, "the slow clients were all still waiting while the others ran"
    assert recovered[0] == 200
    assert "WORKER TIMEOUT" not in log


@pytest.fixture(scope="module")
def service(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    """A web process whose deadlines are a second each, for the deadline tests to meet."""
    environment = service_environment(
        database_url,
        WEB_HEADER_TIMEOUT=str(DEADLINE_SECONDS),
        WEB_BODY_TIMEOUT=str(DEADLINE_SECONDS),
        KEEPALIVE=str(KEEPALIVE_SECONDS),
    )
    with web_process(environment, tmp_path_factory.mktemp("deadlines")) as running:
        yield running


def send_slowly(connection: socket.socket, pieces: list[bytes], gap: float) -> float:
    """Send each piece after a pause of gap seconds, until the server stops listening; how long
    after the first pause the last piece went (or the server stopped taking them)."""
    started = time.monotonic()
    for piece in pieces:
        time.sleep(gap)
        try:
            connection.sendall(piece)
        except OSError:  # the server closed the connection, or the test did
            break
    return time.monotonic() - started


def closed_after(connection: socket.socket, limit: float) -> tuple[bytes, float]:
    """Wait up to limit seconds for the server to close; what it sent, and when it closed."""
    started = time.monotonic()
    connection.settimeout(limit)
    received = bytearray()
    with contextlib.suppress(ConnectionResetError):
        while data := connection.recv(65536):
            received += data
    return bytes(received), time.monotonic() - started


def trickled(connection: socket.socket, piece: bytes, seconds: float) -> None:
    """Keep sending piece every fifth of the deadline, from a thread, for seconds at most."""
    pieces = [piece] * int(seconds / (DEADLINE_SECONDS / 5))
    threading.Thread(
        target=send_slowly, args=(connection, pieces, DEADLINE_SECONDS / 5), daemon=True
    ).start()


def test_a_client_that_sends_its_headers_too_slowly_is_disconnected_at_the_header_deadline(
    service: RunningService,
) -> None:
    with connect(service) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        trickled(connection, b"X-Slow: 1\r\n", DEADLINE_SECONDS + SLACK_SECONDS + 1)
        received, seconds = closed_after(connection, DEADLINE_SECONDS + SLACK_SECONDS)
    assert received == b"", "no answer: the request never began"
    assert DEADLINE_SECONDS * 0.9 <= seconds < DEADLINE_SECONDS + SLACK_SECONDS
    assert http_get(f"{service.base_url}/healthz")[0] == 200


def test_a_kept_alive_connection_whose_next_request_trickles_is_closed_at_the_keepalive_deadline(
    service: RunningService,
) -> None:
    with connect(service) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        first = read_one_answer(connection)
        assert first.status == 200, first
        connection.sendall(b"GET /healthz HTTP/1.1\r\n")
        trickled(connection, b"X-Slow: 1\r\n", KEEPALIVE_SECONDS + SLACK_SECONDS + 1)
        received, seconds = closed_after(connection, KEEPALIVE_SECONDS + SLACK_SECONDS)
    assert received == b""
    assert KEEPALIVE_SECONDS * 0.9 <= seconds < KEEPALIVE_SECONDS + SLACK_SECONDS


def test_a_client_slow_but_within_the_header_deadline_is_served(service: RunningService) -> None:
    pieces = [b"Host: 127.0.0.1\r\n", b"Accept: */*\r\n", b"Connection: close\r\n\r\n"]
    with connect(service) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\n")
        send_slowly(connection, pieces, DEADLINE_SECONDS / 5)
        answer = read_answer(connection)
    assert answer.status == 200, answer


def slow_post(body_pieces: list[bytes]) -> bytes:
    """The head of a POST of a todo whose body is the pieces joined."""
    length = sum(map(len, body_pieces))
    return (
        b"POST /api/todos HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % length
    )


def test_a_client_that_sends_its_body_too_slowly_gets_a_408_at_the_body_deadline(
    service: RunningService, database_url: str
) -> None:
    before = count_todos(database_url)
    body = b'{"title": "never complete"}'
    with connect(service) as connection:
        connection.sendall(slow_post([body]) + body[:1])
        trickled(connection, b" ", DEADLINE_SECONDS + SLACK_SECONDS + 1)
        started = time.monotonic()
        answer: Answer = read_answer(connection)
        seconds = time.monotonic() - started
    assert_problem(answer, 408)
    assert DEADLINE_SECONDS * 0.9 <= seconds < DEADLINE_SECONDS + SLACK_SECONDS
    assert count_todos(database_url) == before, "the refused request created nothing"
    assert http_get(f"{service.base_url}/healthz")[0] == 200


def test_a_client_slow_but_within_the_body_deadline_is_served(service: RunningService) -> None:
    pieces = [b'{"title": ', b'"slow but', b' in time"}']
    with connect(service) as connection:
        connection.sendall(slow_post(pieces))
        send_slowly(connection, pieces, DEADLINE_SECONDS / 5)
        answer = read_answer(connection)
    assert answer.status == 201, answer
    assert json.loads(answer.body)["title"] == "slow but in time"
