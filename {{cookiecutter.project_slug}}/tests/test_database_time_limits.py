"""Every wait on the database is bounded: a stuck request gets a 503 in time, not a dead worker.

Each test starts the real web process with one bound set to a second, makes a request wait
on that bound for real (a table lock held by another session, a slow statement, a pool
with no free connection), and checks the answer, how long it took, that the worker process
survived, and that the service serves normally afterwards.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Connection, create_engine, make_url, text

from .databases import waits_for_lock
from .environments import service_environment
from .processes import RunningService, child_pids, wait_for, web_process

pytestmark = pytest.mark.processes

BOUND_SECONDS = 1
# Added to a bound for a busy machine: a 503 may come late, but not this late, nor early.
SLACK_SECONDS = 3


@dataclass
class Answer:
    """What a request got back, and how long it took."""

    status: int
    content_type: str
    body: str
    seconds: float


def timed_request(method: str, url: str, payload: object = None) -> Answer:
    """Send a request and time it; errors are answers too."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
    request.add_header("Content-Type", "application/json")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            status, headers, body = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, headers, body = error.code, error.headers, error.read()
    seconds = time.monotonic() - started
    return Answer(int(status), headers.get_content_type(), body.decode(), seconds)


def assert_unavailable_in_time(answer: Answer, database_url: str) -> None:
    """A 503 problem that names nothing internal, after the bound and not long after it."""
    assert answer.status == 503, answer
    assert answer.content_type == "application/problem+json"
    assert json.loads(answer.body)["status"] == 503
    url = make_url(database_url)
    for internal in ("SELECT", "INSERT", "todos", "timeout", str(url.host), str(url.database)):
        assert internal.lower() not in answer.body.lower(), answer.body
    assert BOUND_SECONDS * 0.9 <= answer.seconds < BOUND_SECONDS + SLACK_SECONDS, answer


def assert_serves_normally(service: RunningService, workers: list[int]) -> None:
    """The same worker processes as before serve the API again."""
    assert timed_request("GET", f"{service.base_url}/api/todos").status == 200
    assert timed_request("POST", f"{service.base_url}/api/todos", {"title": "after"}).status == 201
    assert sorted(child_pids(service.process.pid)) == workers
    assert "WORKER TIMEOUT" not in service.stdout_path.read_text()


@contextlib.contextmanager
def session_of_its_own(database_url: str) -> Iterator[Connection]:
    """Another client's session on the database, whose transaction is rolled back at the end."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            yield connection
            connection.rollback()
    finally:
        engine.dispose()


@contextlib.contextmanager
def table_locked(database_url: str) -> Iterator[None]:
    """Hold the todos table locked against every reader and writer, as a migration might."""
    with session_of_its_own(database_url) as connection:
        connection.execute(text("LOCK TABLE todos IN ACCESS EXCLUSIVE MODE"))
        yield


@contextlib.contextmanager
def inserts_made_slow(database_url: str) -> Iterator[None]:
    """Make every INSERT into todos take a minute, with a trigger that sleeps."""
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "CREATE FUNCTION sleep_a_minute() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN PERFORM pg_sleep(60); RETURN NEW; END $$"
            )
        )
        connection.execute(
            text(
                "CREATE TRIGGER slow_insert BEFORE INSERT ON todos "
                "FOR EACH ROW EXECUTE FUNCTION sleep_a_minute()"
            )
        )
    try:
        yield
    finally:
        with engine.begin() as connection:
            connection.execute(text("DROP TRIGGER slow_insert ON todos"))
            connection.execute(text("DROP FUNCTION sleep_a_minute()"))
        engine.dispose()


def test_a_request_waiting_for_a_lock_gets_a_503_after_the_lock_timeout(
    database_url: str, tmp_path: Path
) -> None:
    environment = service_environment(
        database_url, WEB_CONCURRENCY="1", DATABASE_LOCK_TIMEOUT=str(BOUND_SECONDS)
    )
    with web_process(environment, tmp_path) as service:
        workers = sorted(child_pids(service.process.pid))
        with table_locked(database_url):
            answer = timed_request("GET", f"{service.base_url}/api/todos")
        assert_unavailable_in_time(answer, database_url)
        print(f"503 after {answer.seconds:.2f} s waiting for a lock")
        assert_serves_normally(service, workers)


def test_a_slow_statement_is_cut_at_the_statement_timeout_with_a_503(
    database_url: str, tmp_path: Path
) -> None:
    environment = service_environment(
        database_url, WEB_CONCURRENCY="1", DATABASE_STATEMENT_TIMEOUT=str(BOUND_SECONDS)
    )
    with web_process(environment, tmp_path) as service:
        workers = sorted(child_pids(service.process.pid))
        with inserts_made_slow(database_url):
            answer = timed_request("POST", f"{service.base_url}/api/todos", {"title": "slow"})
        assert_unavailable_in_time(answer, database_url)
        print(f"503 after {answer.seconds:.2f} s of a slow statement")
        assert_serves_normally(service, workers)
        titles = [
            item["title"]
            for item in json.loads(timed_request("GET", f"{service.base_url}/api/todos").body)[
                "items"
            ]
        ]
        assert titles == ["after"], "the cut INSERT was rolled back"


def test_a_request_finding_no_free_pooled_connection_gets_a_503_after_the_pool_timeout(
    database_url: str, tmp_path: Path
) -> None:
    environment = service_environment(
        database_url,
        WEB_CONCURRENCY="1",
        DATABASE_POOL_SIZE="1",
        DATABASE_POOL_TIMEOUT=str(BOUND_SECONDS),
        DATABASE_LOCK_TIMEOUT="20",
        DATABASE_STATEMENT_TIMEOUT="20",
    )
    with web_process(environment, tmp_path) as service:
        workers = sorted(child_pids(service.process.pid))
        first: list[Answer] = []
        with table_locked(database_url):
            # The first request takes the pool's only connection and waits on the lock.
            holder = threading.Thread(
                target=lambda: first.append(timed_request("GET", f"{service.base_url}/api/todos"))
            )
            holder.start()
            wait_for(lambda: waits_for_lock(database_url), "the first request to hold the lock")
            answer = timed_request("GET", f"{service.base_url}/api/todos")
        holder.join(timeout=30)
        assert_unavailable_in_time(answer, database_url)
        print(f"503 after {answer.seconds:.2f} s waiting for a pooled connection")
        assert [held.status for held in first] == [200], "the first request finished once unlocked"
        assert_serves_normally(service, workers)
