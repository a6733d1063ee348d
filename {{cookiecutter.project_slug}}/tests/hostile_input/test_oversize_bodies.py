"""A body over the limit always gets its 413, never a broken pipe.

The service refuses such a body without reading it. Were the connection closed at once, the
client, still sending, could be reset before it reads the answer; the web server reads and
drops the rest first (src/<package>/web_server/lingering.py), within caps. These tests send
many such bodies, as a client library would, and a huge one that meets the caps.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
from sqlalchemy import Engine

from ..http_client import http_get
from ..processes import RunningService
from .raw_http import (
    ANSWER_SECONDS,
    MAX_CONTENT_LENGTH,
    Baseline,
    assert_problem,
    assert_unharmed,
    connect,
    read_answer,
    read_one_answer,
)

pytestmark = pytest.mark.processes

# Sizes from just over the limit to the cap the server reads after refusing (four times it).
OVERSIZE_BYTES = [MAX_CONTENT_LENGTH + 1, MAX_CONTENT_LENGTH * 3 // 2, MAX_CONTENT_LENGTH * 2]
OVERSIZE_BYTES += [MAX_CONTENT_LENGTH * 3, MAX_CONTENT_LENGTH * 4 - 1024]
REPETITIONS = 200
LINGER_SECONDS = 2
# Added to the server's linger for a busy machine.
SLACK_SECONDS = 3


def oversize_post(size: int, *, keep_alive: bool) -> bytes:
    """A POST of a todo whose body is size bytes, the head and the body in one piece."""
    connection = b"keep-alive" if keep_alive else b"close"
    head = (
        b"POST /api/todos HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: %s\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (connection, size)
    )
    return head + b'{"title": "big"' + b" " * (size - 16) + b"}"


def send_oversize(service: RunningService, size: int, *, keep_alive: bool) -> str:
    """Send one oversize POST as a client library would (all of it, then read the answer);
    what came of it: 413, or how it failed."""
    with connect(service) as connection:
        try:
            connection.sendall(oversize_post(size, keep_alive=keep_alive))
            answer = read_one_answer(connection) if keep_alive else read_answer(connection)
        except BrokenPipeError:
            return "broken pipe"
        except ConnectionResetError:
            return "reset"
    try:
        assert_problem(answer, 413)
    except AssertionError:
        return f"status {answer.status}"
    return "413"


def test_every_oversize_body_gets_a_whole_413_with_and_without_keep_alive(
    service: RunningService, database: Engine, baseline: Baseline
) -> None:
    outcomes: Counter[tuple[str, str]] = Counter()
    for index in range(REPETITIONS):
        keep_alive = index % 2 == 0
        size = OVERSIZE_BYTES[index // 2 % len(OVERSIZE_BYTES)]
        outcome = send_oversize(service, size, keep_alive=keep_alive)
        outcomes["keep-alive" if keep_alive else "close", outcome] += 1
    print(f"{REPETITIONS} oversize bodies: {dict(outcomes)}")
    assert {outcome for _, outcome in outcomes} == {"413"}, dict(outcomes)
    assert_unharmed(service, database, baseline)


def test_a_body_far_beyond_the_cap_sent_slowly_is_cut_off_within_the_time_cap(
    service: RunningService, database: Engine, baseline: Baseline
) -> None:
    # 64 MiB announced, sent a chunk at a time: the server answers 413 at once, reads on for
    # its two seconds, then closes; the worker serves others meanwhile and right after.
    size = 64 * 1024 * 1024
    with connect(service) as connection:
        connection.sendall(oversize_post(size, keep_alive=True)[: 64 * 1024])
        started = time.monotonic()
        cut_off = False
        while time.monotonic() - started < LINGER_SECONDS + SLACK_SECONDS:
            try:
                connection.sendall(b" " * 16 * 1024)
            except (BrokenPipeError, ConnectionResetError):
                cut_off = True
                break
            time.sleep(0.01)
        seconds = time.monotonic() - started
    assert cut_off, f"still sending after {seconds:.1f} s"
    assert seconds < LINGER_SECONDS + SLACK_SECONDS
    started = time.monotonic()
    assert http_get(f"{service.base_url}/healthz")[0] == 200
    assert time.monotonic() - started < ANSWER_SECONDS
    assert_unharmed(service, database, baseline)
