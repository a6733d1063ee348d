"""Gunicorn settings for the web process, every one from the environment (factors VII-IX)."""

from __future__ import annotations

from gevent import monkey

# The workers are evented (see web_server/concurrency.py). Patched first, before the app is
# imported here (preload_app), so that every lock, socket and thread it makes cooperates. The
# master (gunicorn's arbiter) keeps the real fork, waitpid and signal handling it is written
# for; each worker patches those too as it starts (gunicorn's gevent worker does).
monkey.patch_all(os=False, signal=False, subprocess=False)

import contextlib
import functools
import gc
import inspect
import ipaddress
import json
import logging
import mmap
import os
import queue
import signal
import socket
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

import gunicorn.util
from gunicorn.glogging import Logger
from gunicorn.http.wsgi import Response

from {{ cookiecutter.package_name }} import CHOSEN_OPTIONS
from {{ cookiecutter.package_name }}.config import settings_or_exit
from {{ cookiecutter.package_name }}.logging import configure_logging
from {{ cookiecutter.package_name }}.web_server.concurrency import (
    CooperativeWorker,
)

settings = settings_or_exit("gunicorn")

# Port binding (VII): the service is self-contained and binds the port it is given.
bind = [f"0.0.0.0:{settings.port}"]

# Concurrency (VIII): scale by running more worker processes, set per deployment. Each
# serves up to WEB_CONNECTIONS clients at once, and a client that sends its request slowly
# is cut off at a deadline instead of holding a worker.
workers = settings.web_concurrency
worker_class = CooperativeWorker.with_limits(
    header_seconds=settings.web_header_timeout,
    body_seconds=settings.web_body_timeout,
    max_content_length=settings.max_content_length,
)
worker_connections = settings.web_connections

# The master imports the app once, before it forks the workers: they start serving at once,
# and share the pages of the imported code instead of each importing its own copy. (The
# engine's pool is emptied in each worker, see db.py; the master never connects.) The cost:
# a reload (SIGHUP) rereads these settings but not the code; deploy a new release instead.
preload_app = True


def pre_fork(_server: Any, _worker: Any) -> None:
    """Keep the inherited objects out of the workers' garbage collection, which would
    otherwise touch, and so copy, every page they share with the master."""
    gc.freeze()


# A stop signal sent to the whole process group (Ctrl-C in a terminal, or a supervisor
# that signals the group) while gunicorn is forking a worker used to be lost: until the
# worker installs its own handlers, the child still runs the master's, which only queue the
# signal for the master's loop, a loop the child never runs. The master then waited
# GRACEFUL_TIMEOUT for a worker that did not know it was to stop. With preload_app a first
# request is served while the next worker is still being forked, so this window is open
# just when a quick start and stop (a test, a newcomer's Ctrl-C) meets it.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


def post_fork(server: Any, _worker: Any) -> None:
    """In a new worker: stop signals stop it until it takes them over; one it received
    already (queued in its copy of the master's signal queue) stops it at once."""
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, signal.SIG_DFL)
    queued = []
    with contextlib.suppress(queue.Empty):
        while True:
            queued.append(server.SIG_QUEUE.get_nowait())
    if any(received in STOP_SIGNALS for received in queued):
        os._exit(0)


# Disposability (IX): on SIGTERM, first drain (see when_ready below), then stop accepting
# and finish the requests in flight within graceful_timeout.
timeout = settings.web_timeout
graceful_timeout = settings.graceful_timeout
keepalive = settings.keepalive

# Stay in the foreground, write no pid file, no control socket, nothing under $HOME.
daemon = False
pidfile = None
control_socket_disable = True
# Worker heartbeats go to RAM, not to a disk that may be slow or read-only.
HEARTBEAT_DIR = "/dev/shm"  # noqa: S108 - not a temporary file of ours
worker_tmp_dir = HEARTBEAT_DIR if os.path.isdir(HEARTBEAT_DIR) else None

# Proxies: gunicorn believes X-Forwarded-Proto (and its other secure_scheme_headers) only
# from a peer in FORWARDED_ALLOW_IPS, and client_address below does the same for
# X-Forwarded-For. Nothing else reads proxy headers: the app has no ProxyFix, and nothing
# parses Forwarded. The default trusts no one (gunicorn's own default trusts 127.0.0.1), so
# a client that reaches the port itself can claim neither HTTPS nor another address.
forwarded_allow_ips = settings.forwarded_allow_ips
PROXY_ENTRIES = [entry for entry in forwarded_allow_ips.split(",") if entry]
TRUSTS_ANY_PROXY = "*" in PROXY_ENTRIES
TRUSTED_PROXIES = [ipaddress.ip_network(entry) for entry in PROXY_ENTRIES if entry != "*"]


def is_trusted_proxy(address: str) -> bool:
    """Whether FORWARDED_ALLOW_IPS names a network this address is in (a * names none)."""
    return is_ip_address(address) and any(
        ipaddress.ip_address(address) in network for network in TRUSTED_PROXIES
    )


def client_address(environ: dict[str, Any]) -> str:
    """The client's address: the peer's, or the one that trusted proxies forwarded for."""
    address: str = environ["REMOTE_ADDR"]
    trusted = TRUSTS_ANY_PROXY or is_trusted_proxy(address)
    # Each proxy appends the address it got the request from, so read from the right while
    # the address in hand is a trusted proxy's: whatever lies further left, the client wrote.
    # A * trusts the peer alone; proxies behind it must be named to be believed too.
    for hop in reversed(environ.get("HTTP_X_FORWARDED_FOR", "").split(",")):
        candidate = hop.strip()
        if not trusted or not is_ip_address(candidate):
            break
        address = candidate
        trusted = is_trusted_proxy(address)
    return address


def is_ip_address(text: str) -> bool:
    """Whether text is an IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# No banner: gunicorn writes "Server: gunicorn" on every response itself, and no setting
# turns that off, so its header lines are wrapped to leave that one out. A reload (SIGHUP)
# runs this file again: unwrap first, so the wrapper is never wrapped.
def without_server_banner(default_headers: Callable[[Response], list[str]]) -> Any:
    """Gunicorn's header lines of a response, less the Server line."""

    @functools.wraps(default_headers)
    def headers(response: Response) -> list[str]:
        return [line for line in default_headers(response) if not line.startswith("Server:")]

    return headers


Response.default_headers = without_server_banner(  # type: ignore[method-assign]
    inspect.unwrap(Response.default_headers)
)


# A request gunicorn cannot parse (not HTTP, a request line or headers too long, broken
# chunked framing) never reaches the app: gunicorn answers it with an HTML page of its own.
# Every error of this service is a problem document, so that page is replaced too. Its
# detail is the status's standard description: gunicorn's message would echo the input.
def write_problem(sock: socket.socket, status: int, reason: str, _message: str) -> None:
    """Gunicorn's answer to a request it refused, as application/problem+json."""
    # Imported here: the workers, which alone call this, have the web stack loaded already.
    from {{ cookiecutter.package_name }}.security_headers import SECURITY_HEADERS

    problem = {
        "type": "about:blank",
        "title": reason,
        "status": status,
        "detail": HTTPStatus(status).description,
    }
    body = json.dumps(problem).encode()
    head = [
        f"HTTP/1.1 {status} {reason}",
        "Connection: close",
        "Content-Type: application/problem+json",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in SECURITY_HEADERS.items()),
    ]
    sock.sendall("\r\n".join([*head, "", ""]).encode("latin-1") + body)


gunicorn.util.write_error = write_problem

# Logs (XI): access and error lines go to stdout as the same JSON events as the app's.
accesslog = "-"
errorlog = "-"
loglevel = settings.log_level.lower()


class JsonLogger(Logger):
    """Gunicorn's logger, writing through the application's logging configuration."""

    def setup(self, cfg: Any) -> None:
        """Send gunicorn's own loggers through the service's stdout handler, not their own."""
        configure_logging(settings)

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        """Log one finished request with the fields of the access-log contract."""
        if not self.access_log.isEnabledFor(logging.INFO):  # LOG_LEVEL=WARNING or above
            return
        request_id = next(
            (value for name, value in resp.headers if name.lower() == "x-request-id"), None
        )
        # An answer gunicorn wrote itself (to a request it could not parse) has no status_code.
        status = getattr(resp, "status_code", None) or resp.status
        duration_ms = round(request_time.total_seconds() * 1000, 2)
        path = req.path + (f"?{req.query}" if req.query else "")
        self.access_log.info(
            "%s %s %s",
            req.method,
            path,
            status,
            extra={
                "method": req.method,
                "path": path,
                "status": int(str(status)[:3]),
                "duration_ms": duration_ms,
                "request_id": request_id,
                "remote_addr": environ.get("REMOTE_ADDR"),
            },
        )


logger_class = JsonLogger


# The drain. Alone, gunicorn closes its listeners as soon as it gets SIGTERM, and the
# connections still waiting in the listen backlog are reset. Here the master first marks
# itself draining: /readyz answers 503, which takes the process out of the load balancer,
# while the workers go on accepting and serving. DRAIN_SECONDS later it stops as gunicorn
# always does. A second SIGTERM changes nothing; SIGINT and SIGQUIT still stop at once.
# The drain needs SIGTERM to reach the master alone, as docker stop and Kubernetes send it
# (to PID 1). A supervisor that signals every process of the group stops the workers at
# once; with systemd, use KillMode=mixed.

# One byte of memory shared by the master and its workers, which inherit it when they are
# forked: 1 while the master drains.
draining = mmap.mmap(-1, 1)
# The key of the WSGI environ that tells the app (health.py) about it, with every request.
DRAINING_ENVIRON_KEY = "service.draining"

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def when_ready(server: Any) -> None:
    """Start what the chosen options serve beside the app, then make the master (gunicorn's
    Arbiter) drain on SIGTERM before its graceful stop."""
    for option in CHOSEN_OPTIONS:
        if hasattr(option, "server_ready"):
            option.server_ready()
    if settings.drain_seconds == 0:
        return
    graceful_stop = type(server).handle_term  # gunicorn's own handling of SIGTERM

    def start_draining() -> None:
        if draining[0]:
            return
        draining[0] = 1
        server.log.info("Draining for %s s: not ready, still serving", settings.drain_seconds)
        # The alarm ends the drain: gunicorn queues SIGALRM like any signal, then calls
        # handle_alrm from its main loop, which goes on reaping and replacing workers.
        signal.signal(signal.SIGALRM, server.signal)
        signal.setitimer(signal.ITIMER_REAL, settings.drain_seconds)

    server.handle_term = start_draining
    server.handle_alrm = lambda: graceful_stop(server)


# A reload (SIGHUP) runs this file again, with a new flag for the workers it starts.
on_reload = when_ready


def child_exit(_server: Any, worker: Any) -> None:
    """A worker has exited: let the chosen options forget it (its share of the metrics, say)."""
    for option in CHOSEN_OPTIONS:
        if hasattr(option, "worker_exited"):
            option.worker_exited(worker.pid)


def post_worker_init(worker: Any) -> None:
    """Tell the app, with every request, whether the server is draining and who the client is."""
    app: WsgiApp = worker.wsgi

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ[DRAINING_ENVIRON_KEY] = draining[0] == 1
        if PROXY_ENTRIES:  # with no proxy trusted, the peer's address stands as it is
            environ["REMOTE_ADDR"] = client_address(environ)
        return app(environ, start_response)

    worker.wsgi = serve
