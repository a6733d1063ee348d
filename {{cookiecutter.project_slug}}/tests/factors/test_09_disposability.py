"""Disposability: fast start; SIGTERM finishes in-flight requests; SIGKILL leaves no half-write."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from ..support import (
    PROJECT_ROOT,
    free_port,
    http_request,
    procfile_command,
    row_locked,
    service_environment,
    update_waits_for_lock,
    wait_for,
    wait_until_serving,
    web_process,
)

# Generous on purpose: it catches a start that hangs, not one that is slow on a busy machine.
START_BOUND_SECONDS = 20
GRACEFUL_TIMEOUT = 10


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


def test_the_web_process_serves_soon_after_it_starts(database_url: str) -> None:
    port = free_port()
    environment = service_environment(database_url, PORT=str(port), WEB_CONCURRENCY="1")
    started = time.monotonic()
    process = subprocess.Popen(
        procfile_command("web"),
        cwd=PROJECT_ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/healthz", process, START_BOUND_SECONDS)
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
