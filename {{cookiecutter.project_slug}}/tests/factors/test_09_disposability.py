"""Disposability: fast start; SIGTERM drains, then requests finish; SIGKILL leaves no half-write."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from ..databases import row_locked, update_waits_for_lock
from ..environments import service_environment
from ..http_client import http_request
from ..processes import (
    PROJECT_ROOT,
    free_port,
    procfile_command,
    wait_for,
    wait_until_serving,
    web_process,
)

pytestmark = pytest.mark.processes

# Generous on purpose: it catches a start that hangs, not one that is slow on a busy machine.
START_BOUND_SECONDS = 20
GRACEFUL_TIMEOUT = 10
DRAIN_SECONDS = 3


class InFlightPatch(threading.Thread):
    """A PATCH sent in the background, so the test can act while it is in flight."""

    def __init__(self, url: str, payload: dict[str, object]) -> None:
        super().__init__(daemon=True)
        self.url, self.payload = url, payload
        self.status: int | None = None
        self.error: Exception | None = None

    def run(self) -> None:
        """Send the request and keep its outcome."""
        try:
            self.status, _ = http_request("PATCH", self.url, self.payload, timeout=60)
        except OSError as error:
            self.error = error


def todo_row(database_url: str, todo_id: int) -> tuple[str, bool]:
    """The todo's title and done flag, read straight from the database."""
    engine = create_engine(database_url)
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT title, done FROM todos WHERE id = :id"), {"id": todo_id}
        ).one()
    engine.dispose()
    return row.title, row.done


def test_the_web_process_serves_soon_after_it_starts(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    environment = service_environment(database_url, PORT=str(port), WEB_CONCURRENCY="1")
    output = tmp_path / "web.log"
    started = time.monotonic()
    with output.open("wb") as log:
        process = subprocess.Popen(
            procfile_command("web"),
            cwd=PROJECT_ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        try:
            wait_until_serving(f"http://127.0.0.1:{port}/healthz", process, START_BOUND_SECONDS)
        except (TimeoutError, RuntimeError) as error:
            # What the process said tells a slow start from a stuck one.
            written = output.read_text(encoding="utf-8", errors="replace")[-4000:]
            raise AssertionError(f"{error}; the web process wrote:\n{written}") from error
        print(f"first 200 after {time.monotonic() - started:.2f} s")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_sigterm_lets_the_request_in_flight_finish_then_exits_zero(
    database_url: str, tmp_path: Path
) -> None:
    environment = service_environment(
        database_url, WEB_CONCURRENCY="1", GRACEFUL_TIMEOUT=str(GRACEFUL_TIMEOUT)
    )
    with web_process(environment, tmp_path) as service:
        _, body = http_request("POST", f"{service.base_url}/api/todos", {"title": "before"})
        todo_id = json.loads(body)["id"]
        with row_locked(database_url, todo_id) as blocker:
            request = InFlightPatch(f"{service.base_url}/api/todos/{todo_id}", {"done": True})
            request.start()
            wait_for(lambda: update_waits_for_lock(database_url), "the PATCH to be in flight")
            service.process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            assert service.process.poll() is None, "the server quit with a request in flight"
            blocker.rollback()
        request.join(timeout=30)
        assert request.status == 200, request.error
        assert service.process.wait(timeout=GRACEFUL_TIMEOUT) == 0
    assert todo_row(database_url, todo_id) == ("before", True)


def test_sigkill_in_the_middle_of_a_write_leaves_no_half_written_row(
    database_url: str, tmp_path: Path
) -> None:
    environment = service_environment(database_url, WEB_CONCURRENCY="1")
    with web_process(environment, tmp_path) as service:
        _, body = http_request("POST", f"{service.base_url}/api/todos", {"title": "intact"})
        todo_id = json.loads(body)["id"]
        with row_locked(database_url, todo_id) as blocker:
            change = {"title": "half-written", "done": True}
            request = InFlightPatch(f"{service.base_url}/api/todos/{todo_id}", change)
            request.start()
            wait_for(lambda: update_waits_for_lock(database_url), "the PATCH to be in flight")
            os.killpg(os.getpgid(service.process.pid), signal.SIGKILL)
            service.process.wait(timeout=30)
            blocker.rollback()
        request.join(timeout=30)
    assert request.status is None
    assert todo_row(database_url, todo_id) == ("intact", False)


@dataclass
class Tally:
    """What the clients of a load balancer saw, one count per outcome."""

    served: int = 0
    served_after_sigterm: int = 0
    other_status: list[int] = field(default_factory=list)
    # A connection that was accepted, then closed or reset before a whole answer came.
    cut: int = 0
    # A connection refused while the load balancer still sent traffic to the process.
    refused: int = 0
    readyz_503_after: float | None = None
    sigterm_at: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class LoadBalancer:
    """New connections from several clients, sent until /readyz stops answering 200.

    Like a load balancer, it polls /readyz and takes the process out of rotation when it
    answers anything else or cannot be reached; the clients then send nothing more. The load
    is bounded: CLIENTS at a time, MAX_REQUESTS in all, for LOAD_SECONDS at most.
    """

    CLIENTS = 8
    MAX_REQUESTS = 3000
    LOAD_SECONDS = 30
    POLL_SECONDS = 0.1

    def __init__(self, port: int) -> None:
        self.port = port
        self.tally = Tally()
        self.out_of_rotation = threading.Event()
        self.sent = 0
        self.stop_at = time.monotonic() + self.LOAD_SECONDS
        self.threads = [threading.Thread(target=self.poll_readiness, daemon=True)] + [
            threading.Thread(target=self.send_requests, daemon=True) for _ in range(self.CLIENTS)
        ]

    def __enter__(self) -> LoadBalancer:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.out_of_rotation.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def in_rotation(self) -> bool:
        """Whether the process still gets traffic, within the bounds of the load."""
        return not self.out_of_rotation.is_set() and time.monotonic() < self.stop_at

    def poll_readiness(self) -> None:
        """Take the process out of rotation once /readyz fails."""
        while self.in_rotation():
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                connection.request("GET", "/readyz")
                status: int | None = connection.getresponse().status
            except (OSError, http.client.HTTPException):
                status = None
            finally:
                connection.close()
            if status != 200:
                sigterm_at = self.tally.sigterm_at
                if status == 503 and sigterm_at is not None:
                    self.tally.readyz_503_after = time.monotonic() - sigterm_at
                self.out_of_rotation.set()
                return
            time.sleep(self.POLL_SECONDS)

    def send_requests(self) -> None:
        """Send requests one after the other, each on a new connection, while in rotation."""
        while self.in_rotation():
            with self.tally.lock:
                if self.sent >= self.MAX_REQUESTS:
                    return
                self.sent += 1
            outcome = self.get_a_page()
            with self.tally.lock:
                if outcome == "refused":
                    self.tally.refused += 1
                elif outcome == "cut":
                    self.tally.cut += 1
                else:
                    self.tally.served += 1
                    self.tally.served_after_sigterm += self.tally.sigterm_at is not None
                    if outcome != 200:
                        self.tally.other_status.append(int(outcome))

    def get_a_page(self) -> int | str:
        """GET a page of todos on a new connection: the status, or "refused" or "cut"."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.connect()
        except ConnectionRefusedError:
            return "refused"
        except OSError:
            # Reset while connecting: the listener closed with the connection in its backlog.
            return "cut"
        try:
            connection.request("GET", "/api/todos?limit=5")
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            return "cut"
        finally:
            connection.close()
        return response.status


def sigterm_under_load(
    database_url: str, tmp_path: Path, drain_seconds: int
) -> tuple[Tally, int, float]:
    """SIGTERM the web process while a load balancer sends it new connections.

    What the clients saw, the exit code, and the seconds from SIGTERM to exit.
    """
    environment = service_environment(
        database_url,
        WEB_CONCURRENCY="2",
        DRAIN_SECONDS=str(drain_seconds),
        GRACEFUL_TIMEOUT=str(GRACEFUL_TIMEOUT),
    )
    with web_process(environment, tmp_path) as service:
        port = int(service.base_url.rsplit(":", 1)[1])
        with LoadBalancer(port) as balancer:
            wait_for(lambda: balancer.tally.served >= 100, "the load to be served", 30)
            balancer.tally.sigterm_at = time.monotonic()
            service.process.send_signal(signal.SIGTERM)
            exit_code = service.process.wait(timeout=drain_seconds + GRACEFUL_TIMEOUT + 10)
            stopped_after = time.monotonic() - balancer.tally.sigterm_at
    tally = balancer.tally
    print(
        f"DRAIN_SECONDS={drain_seconds}: {tally.served} served ({tally.served_after_sigterm} "
        f"after SIGTERM), {tally.cut} cut, {tally.refused} refused, /readyz 503 after "
        f"{tally.readyz_503_after} s, exit {exit_code} after {stopped_after:.2f} s"
    )
    return tally, exit_code, stopped_after


def test_sigterm_drains_so_no_connection_is_cut_or_refused_then_exits_zero(
    database_url: str, tmp_path: Path
) -> None:
    tally, exit_code, stopped_after = sigterm_under_load(database_url, tmp_path, DRAIN_SECONDS)
    assert tally.readyz_503_after is not None, "/readyz never answered 503 after SIGTERM"
    assert tally.readyz_503_after < DRAIN_SECONDS
    assert tally.served_after_sigterm > 0, "the process stopped serving at SIGTERM"
    assert (tally.cut, tally.refused, tally.other_status) == (0, 0, [])
    assert exit_code == 0
    assert DRAIN_SECONDS <= stopped_after < DRAIN_SECONDS + GRACEFUL_TIMEOUT


def test_without_a_drain_sigterm_cuts_or_refuses_connections(
    database_url: str, tmp_path: Path
) -> None:
    """The control: with DRAIN_SECONDS=0 the same load does lose connections."""
    tally, exit_code, _ = sigterm_under_load(database_url, tmp_path, 0)
    assert tally.readyz_503_after is None
    assert tally.cut + tally.refused > 0
    assert exit_code == 0


# Runs the web server's post_fork hook (web_server/forking.py) in a forked child, as gunicorn
# does right after it forks a worker; prints how the child ended. argv: the signal already
# queued for the master when the child was forked, or "none".
POST_FORK_PROBE = """
import os, queue, signal, sys, time
from {{ cookiecutter.package_name }}.web_server import forking
class Master:
    SIG_QUEUE = queue.SimpleQueue()
# The master's handlers, which a forked child inherits: they only queue the signal.
for name in ("SIGTERM", "SIGINT", "SIGQUIT"):
    signal.signal(getattr(signal, name), lambda number, _frame: Master.SIG_QUEUE.put_nowait(number))
if sys.argv[1] != "none":
    Master.SIG_QUEUE.put_nowait(getattr(signal, sys.argv[1]))
child = os.fork()
if child == 0:
    forking.stop_on_stop_signals(Master())
    # A stop signal while the worker is still starting, before it installs its handlers.
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)
    os._exit(1)
_, status = os.waitpid(child, 0)
if os.WIFSIGNALED(status):
    print(f"signal {os.WTERMSIG(status)}")
else:
    print(f"exit {os.WEXITSTATUS(status)}")
"""


def post_fork_outcome(database_url: str, queued: str) -> str:
    """How a freshly forked worker ends when a stop signal reaches it as it starts."""
    done = subprocess.run(
        [sys.executable, "-c", POST_FORK_PROBE, queued],
        cwd=PROJECT_ROOT,
        env=service_environment(database_url),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.strip()


def test_a_worker_still_starting_stops_on_a_stop_signal_instead_of_losing_it(
    database_url: str,
) -> None:
    # Until gunicorn's worker installs its handlers, the child still has the master's, which
    # only queue the signal: a SIGTERM to the process group (Ctrl-C, a supervisor) then kept
    # the master waiting GRACEFUL_TIMEOUT for a worker that never stopped.
    assert post_fork_outcome(database_url, "none") == f"signal {signal.SIGTERM.value}"
    # One that reached the master's handler in the child before the hook ran stops it too.
    assert post_fork_outcome(database_url, "SIGINT") == "exit 0"
