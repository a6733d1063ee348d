"""How the web process serves many clients at once (factor VIII): its workers.

gunicorn's default sync worker gives a whole process to each connection from its first
byte, so a few clients that send their request slowly, on purpose or over a bad link, hold
every worker and the service stops answering anyone. This worker is gunicorn's gevent
worker: each connection waits in a greenlet of its own, and a worker runs a request only
once its head has arrived, so slow clients cost memory, not capacity. Concurrency still
scales by processes (WEB_CONCURRENCY); within one, waits on the network and on the database
let another request run.

What a client may not do is take forever: the request's head and its body each have a
deadline (WEB_HEADER_TIMEOUT, WEB_BODY_TIMEOUT), so a connection that trickles is cut off.
And a request refused early still has its answer read by the client (lingering.py).

Told to stop (SIGTERM from the master), a worker stops accepting at once and exits as soon
as its last request in flight is answered (factor IX), not at its next one-second check.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any, ClassVar

import gevent
import gevent.event
import gevent.local

# gevent.os, gevent.signal and gevent.subprocess: what each worker patches in (see patch),
# imported in the master before it forks, so that the workers share these modules' pages
# instead of each importing its own.
import gevent.os
import gevent.pool
import gevent.server
import gevent.signal
import gevent.socket
import gevent.subprocess
import psycopg2
import psycopg2.extensions
from gevent import monkey
from gunicorn.sock import ssl_context
from gunicorn.workers.ggevent import GeventWorker
from werkzeug.exceptions import RequestTimeout

from .answers import install_service_answers
from .lingering import close_after_answer, discard_rest_of_body
from .wsgi import WsgiApp


def wait_cooperatively(connection: Any) -> None:
    """psycopg2's wait callback: wait for the database in the hub, so other greenlets run.

    libpq enforces connect_timeout only when it blocks by itself; once a wait callback is
    set, connecting is this function's loop, so the connection's deadline is kept here.
    """
    deadline = None
    if connection.status == psycopg2.extensions.STATUS_SETUP:
        seconds = psycopg2.extensions.parse_dsn(connection.dsn).get("connect_timeout")
        if seconds:
            deadline = time.monotonic() + float(seconds)
    while (state := connection.poll()) != psycopg2.extensions.POLL_OK:
        if state == psycopg2.extensions.POLL_READ:
            wait = gevent.socket.wait_read
        elif state == psycopg2.extensions.POLL_WRITE:
            wait = gevent.socket.wait_write
        else:
            raise psycopg2.OperationalError(f"unexpected state from the connection: {state}")
        timeout = None if deadline is None else max(deadline - time.monotonic(), 0)
        wait(
            connection.fileno(),
            timeout=timeout,
            timeout_exc=psycopg2.OperationalError("timeout expired connecting to the database"),
        )


class BodyWithDeadline:
    """A request's body (wsgi.input) that must arrive by a deadline, or the request gets 408."""

    def __init__(self, body: Any, deadline: float, seconds: int) -> None:
        self.body = body
        self.deadline = deadline
        self.seconds = seconds

    def _by_deadline(self, read: Callable[..., Any], *args: Any) -> Any:
        """Run one read of the body, cut off when the deadline passes."""
        late = RequestTimeout(f"The request body did not arrive within {self.seconds} seconds.")
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise late
        with gevent.Timeout(remaining, late):
            return read(*args)

    def read(self, size: int | None = -1) -> bytes:
        """Read up to size bytes (all that is left, by default)."""
        data: bytes = self._by_deadline(self.body.read, size)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        """Read one line."""
        line: bytes = self._by_deadline(self.body.readline, size)
        return line

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        """Read the remaining lines."""
        lines: list[bytes] = self._by_deadline(self.body.readlines, hint)
        return lines

    def __iter__(self) -> Iterator[bytes]:
        """Iterate over the remaining lines."""
        while line := self.readline():
            yield line


def has_body(environ: dict[str, Any]) -> bool:
    """Whether the request announces a body: a length above zero, or chunked framing."""
    return environ.get("CONTENT_LENGTH", "0") not in ("", "0") or bool(
        environ.get("HTTP_TRANSFER_ENCODING")
    )


def announces_body(req: Any) -> bool:
    """Whether a request gunicorn parsed announces a body (its header names are upper case)."""
    return any(name in ("CONTENT-LENGTH", "TRANSFER-ENCODING") for name, _ in req.headers)


class CooperativeWorker(GeventWorker):
    """gunicorn's gevent worker, with deadlines on what the client sends."""

    # Seconds for a request's head on a new connection, and for any request's body; the
    # settings set them through with_limits.
    header_seconds: ClassVar[int] = 10
    body_seconds: ClassVar[int] = 30
    # What is read of a refused request before its connection closes (lingering.py): the
    # rest of a body up to a few times the largest accepted, for up to two seconds.
    linger_bytes: ClassVar[int] = 4 * 1024 * 1024
    linger_seconds: ClassVar[float] = 2

    # Per connection (each is served by a greenlet of its own): whether a request's head
    # has been waited for on it already.
    connection = gevent.local.local()

    @classmethod
    def with_limits(
        cls, header_seconds: int, body_seconds: int, max_content_length: int
    ) -> type[CooperativeWorker]:
        """This worker class, with deadlines for a request's head and body, and reading up to
        four times the largest body accepted after an early refusal."""
        limits = {
            "header_seconds": header_seconds,
            "body_seconds": body_seconds,
            "linger_bytes": 4 * max_content_length,
        }
        return type(cls.__name__, (cls,), limits)

    def patch(self) -> None:
        """Make the worker cooperative, and serve the master's listeners through gevent.

        The master patched all of the standard library but os, signal and subprocess before
        it imported the app (gunicorn.conf.py); the worker patches in those three. gunicorn's
        own method would patch everything again, which rewrites every patched module and so
        copies into each worker pages it could share with the master (2.7 MiB, measured).
        """
        monkey.patch_os()
        monkey.patch_signal()
        monkey.patch_subprocess()
        self.sockets = [
            gevent.socket.socket(listener.FAMILY, socket.SOCK_STREAM, fileno=listener.sock.detach())
            for listener in self.sockets
        ]

    def init_process(self) -> None:
        """Before the worker serves anything: make the database driver cooperative, and
        gunicorn's own answers the service's (answers.py)."""
        psycopg2.extensions.set_wait_callback(wait_cooperatively)
        install_service_answers()
        super().init_process()  # type: ignore[no-untyped-call]

    def init_signals(self) -> None:
        """Before the signal handlers are set: what SIGTERM's handler wakes the worker with.

        The handler runs between two Python steps, wherever the worker is; an async watcher
        is what it may safely poke, and the hub then sets the event run() waits on.
        """
        self.told_to_stop = gevent.event.Event()
        self.wake_on_stop = gevent.get_hub().loop.async_()
        self.wake_on_stop.start(self.told_to_stop.set)
        super().init_signals()  # type: ignore[no-untyped-call]

    def run(self) -> None:
        """Serve each listener until told to stop; then stop accepting, let the requests in
        flight finish within graceful_timeout, and return as soon as they have."""
        serving = [self.start_server(listener) for listener in self.sockets]
        while self.alive:
            # The heartbeat the master watches for WEB_TIMEOUT.
            self.notify()  # type: ignore[no-untyped-call]
            self.told_to_stop.wait(timeout=1.0)
        for server, _ in serving:
            server.close()
        deadline = time.monotonic() + self.cfg.graceful_timeout
        for server, connections in serving:
            if not connections.join(timeout=max(deadline - time.monotonic(), 0)):
                self.log.warning("Worker graceful timeout (pid:%s)", self.pid)
                server.stop(timeout=1)

    def start_server(self, listener: Any) -> tuple[gevent.server.StreamServer, gevent.pool.Pool]:
        """Accept on one of the master's listeners, a greenlet per connection, up to
        WEB_CONNECTIONS at once; the server, and the pool of its connections."""
        listener.setblocking(1)
        connections = gevent.pool.Pool(self.worker_connections)
        tls = {"ssl_context": ssl_context(self.cfg)} if self.cfg.is_ssl else {}  # type: ignore[no-untyped-call]
        server = gevent.server.StreamServer(
            listener, handle=partial(self.handle, listener), spawn=connections, **tls
        )
        if self.cfg.workers > 1:
            # One connection per wake-up, so the workers share new connections evenly.
            server.max_accept = 1
        server.start()
        return server, connections

    def handle_exit(self, sig: int, frame: Any) -> None:
        """SIGTERM: stop serving, now rather than at the next heartbeat."""
        super().handle_exit(sig, frame)  # type: ignore[no-untyped-call]
        self.wake_on_stop.send()

    def timeout_ctx(self) -> gevent.Timeout:
        """The deadline for the next request's head (line and headers), after which the
        connection is closed without an answer.

        On a new connection it is header_seconds from the opening; on a kept-alive one,
        gunicorn's keepalive from the previous answer. No answer, because a client cannot
        tell a 408 sent on a connection it left idle from the answer to its next request.
        """
        kept_alive = getattr(self.connection, "kept_alive", False)
        self.connection.kept_alive = True
        seconds = self.cfg.keepalive if kept_alive else self.header_seconds
        # False: gevent's documented silent timeout, which gunicorn expects here; the stubs
        # only know exception classes and instances.
        return gevent.Timeout(seconds, False)  # type: ignore[arg-type]

    def load_wsgi(self) -> None:
        """Load the app, and give the body of each request body_seconds to arrive."""
        super().load_wsgi()  # type: ignore[no-untyped-call]
        app: WsgiApp = self.wsgi
        seconds = self.body_seconds

        def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if has_body(environ):
                deadline = time.monotonic() + seconds
                environ["wsgi.input"] = BodyWithDeadline(environ["wsgi.input"], deadline, seconds)
            return app(environ, start_response)

        self.wsgi = serve

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> None:
        """Serve one request, then read what the app left of its body (a 413 leaves it all),
        so the client can read the answer; past the caps, the connection closes. Then let
        the other connections' requests go first."""
        try:
            super().handle_request(listener_name, req, sock, addr)  # type: ignore[no-untyped-call]
        finally:
            # Most requests announce no body: then there is nothing to wait for, and no
            # deadline to set up for it.
            if announces_body(req) and not discard_rest_of_body(
                getattr(req, "body", None), self.linger_bytes, self.linger_seconds
            ):
                req.must_close = True
        # A client that sends its next request as soon as it has an answer would otherwise
        # be served again and again, its greenlet never waiting, while the others queue:
        # 16 such clients on two workers saw a p99 of half a second, 14 ms with this yield.
        gevent.sleep(0)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """Answer a request gunicorn refused (too long a line or head, bad framing), then
        read what the client still sends before the connection closes."""
        super().handle_error(req, client, addr, exc)  # type: ignore[no-untyped-call]
        close_after_answer(client, self.linger_bytes, self.linger_seconds)
