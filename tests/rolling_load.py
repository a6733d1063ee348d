"""A bounded load of reads and writes against one address, and the tally of what it got back.

Used by tests/test_rolling_release.py. Each client thread writes a todo, reads it back, and
now and then lists the newest page, at a modest pace, until told to stop or out of requests.
A request that gets no answer, or an answer other than the one expected, is a failure; one
whose connection was reset or closed without an answer is also counted as a reset.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

# A connection the peer cut: the failures a rollout must not cause.
RESETS = (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)


@dataclass
class Read:
    """A todo read back: when its request was sent, and whether it carried `notes`."""

    sent_at: float
    todo: dict[str, Any]


@dataclass
class Tally:
    """What the load sent and got, shared by its threads under one lock."""

    sent: int = 0
    failed: int = 0
    reset: int = 0
    acknowledged: dict[int, str] = field(default_factory=dict)
    reads: list[Read] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, what: str, *, reset: bool = False) -> None:
        """Count a failed request, and keep the first few for the report."""
        with self.lock:
            self.failed += 1
            self.reset += reset
            if len(self.failures) < 10:
                self.failures.append(what)

    def figures(self) -> str:
        """One line of figures for the report."""
        return (
            f"sent {self.sent}, failed {self.failed}, reset {self.reset}, "
            f"writes acknowledged {len(self.acknowledged)}"
        )


class Load:
    """Client threads against 127.0.0.1:port, bounded by requests and by time."""

    def __init__(
        self,
        port: int,
        label: str,
        *,
        threads: int = 4,
        pause: float = 0.05,
        max_requests: int = 4000,
        max_seconds: float = 60,
    ) -> None:
        self.port = port
        self.label = label
        self.pause = pause
        self.max_requests = max_requests
        self.deadline = time.monotonic() + max_seconds
        self.tally = Tally()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run_client, args=(number,), daemon=True)
            for number in range(threads)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> Tally:
        """Stop the clients after their request in flight, and return the tally."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        return self.tally

    def _budget_left(self) -> bool:
        with self.tally.lock:
            if self.tally.sent >= self.max_requests:
                return False
            self.tally.sent += 1
        return True

    def _request(
        self, connection: http.client.HTTPConnection, method: str, path: str, body: Any = None
    ) -> tuple[int, Any] | None:
        """One request on the client's kept-alive connection: its status and JSON, or None."""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        payload = json.dumps(body) if body is not None else None
        try:
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except RESETS as error:
            connection.close()
            self.tally.fail(f"{method} {path}: {error!r}", reset=True)
            return None
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            self.tally.fail(f"{method} {path}: {error!r}")
            return None
        try:
            return response.status, json.loads(data) if data else None
        except ValueError:  # not the service's JSON: HAProxy's own error page, say
            return response.status, data[:200]

    def _run_client(self, number: int) -> None:
        """One client thread; should it crash, that counts as a failure too."""
        try:
            self._client(number)
        except Exception as error:
            self.tally.fail(f"client {number} stopped: {error!r}")

    def _client(self, number: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        count = 0
        while not self._stop.is_set() and time.monotonic() < self.deadline:
            count += 1
            title = f"{self.label} {number}-{count}"
            if not self._budget_left():
                break
            created = self._request(connection, "POST", "/api/todos", {"title": title})
            if created is not None and (created[0] != 201 or not isinstance(created[1], dict)):
                self.tally.fail(f"POST /api/todos: {created[0]} {created[1]}")
            elif created is not None:
                todo_id = created[1]["id"]
                with self.tally.lock:
                    self.tally.acknowledged[todo_id] = title
                if not self._budget_left():
                    break
                sent_at = time.monotonic()
                read = self._request(connection, "GET", f"/api/todos/{todo_id}")
                if read is not None and (
                    read[0] != 200 or not isinstance(read[1], dict) or read[1].get("title") != title
                ):
                    self.tally.fail(f"GET /api/todos/{todo_id}: {read[0]} {read[1]}")
                elif read is not None:
                    with self.tally.lock:
                        self.tally.reads.append(Read(sent_at, read[1]))
            if count % 4 == 0 and self._budget_left():
                page = self._request(connection, "GET", "/api/todos?limit=5")
                if page is not None and page[0] != 200:
                    self.tally.fail(f"GET /api/todos?limit=5: {page[0]} {page[1]}")
            self._stop.wait(self.pause)
        connection.close()
