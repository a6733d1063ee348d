"""Every part of gunicorn this service relies on beyond its settings and server hooks, in one
list, with why; tests/test_gunicorn_internals.py checks each against the gunicorn installed.

gunicorn documents its settings, its hooks and its worker classes by name, but not the
methods and attributes below: an upgrade may rename or reshape them without notice. Each
was checked on the versions in CHECKED_ON; when the check fails after an upgrade, the line
it prints names what to look at. Where a setting or a hook would do, it is used instead.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from dataclasses import dataclass

CHECKED_ON = ("27.0.1",)


@dataclass(frozen=True)
class Internal:
    """One thing of gunicorn's that the service uses: a method with its parameters, or an
    attribute (parameters None), on a module or class named by its dotted path."""

    owner: str
    name: str
    parameters: tuple[str, ...] | None
    why: str


INTERNALS = (
    Internal(
        "gunicorn.workers.ggevent.GeventWorker",
        "timeout_ctx",
        ("self",),
        "concurrency.py: the deadline for a request's head (WEB_HEADER_TIMEOUT)",
    ),
    Internal(
        "gunicorn.workers.ggevent.GeventWorker",
        "patch",
        ("self",),
        "concurrency.py: the worker's patching, less the second patch of what the master patched",
    ),
    Internal(
        "gunicorn.sock.BaseSocket",
        "sock",
        None,
        "concurrency.py: the socket of a master's listener, which the worker serves through gevent",
    ),
    Internal(
        "gunicorn.sock.TCPSocket",
        "FAMILY",
        None,
        "concurrency.py: the address family of a master's listener",
    ),
    Internal(
        "gunicorn.workers.ggevent.GeventWorker",
        "init_process",
        ("self",),
        "concurrency.py: psycopg2's wait callback and the service's answers, before serving",
    ),
    Internal(
        "gunicorn.workers.ggevent.GeventWorker",
        "init_signals",
        ("self",),
        "concurrency.py: the watcher SIGTERM wakes the worker with, made before the handlers",
    ),
    Internal(
        "gunicorn.workers.ggevent.GeventWorker",
        "handle_exit",
        ("self", "sig", "frame"),
        "concurrency.py: SIGTERM also wakes the serving loop, so a stop is not a poll away",
    ),
    Internal(
        "gunicorn.workers.ggevent.GeventWorker",
        "run",
        ("self",),
        "concurrency.py: the serving loop, replaced by one that stops as soon as it is told",
    ),
    Internal(
        "gunicorn.workers.ggevent.GeventWorker",
        "handle",
        ("self", "listener", "client", "addr"),
        "concurrency.py: what each accepted connection is given to",
    ),
    Internal(
        "gunicorn.workers.ggevent.GeventWorker",
        "notify",
        ("self",),
        "concurrency.py: the heartbeat the serving loop sends, which WEB_TIMEOUT watches",
    ),
    Internal(
        "gunicorn.workers.ggevent.GeventWorker",
        "sockets",
        None,
        "concurrency.py: the listeners the master opened, one server each",
    ),
    Internal(
        "gunicorn.workers.ggevent.GeventWorker",
        "alive",
        None,
        "concurrency.py: false once the worker is told to stop",
    ),
    Internal(
        "gunicorn.workers.ggevent.GeventWorker",
        "worker_connections",
        None,
        "concurrency.py: WEB_CONNECTIONS, the size of each listener's greenlet pool",
    ),
    Internal(
        "gunicorn.sock",
        "ssl_context",
        ("conf",),
        "concurrency.py: TLS on the listeners when gunicorn is given a certificate",
    ),
    Internal(
        "gunicorn.workers.ggevent.GeventWorker",
        "load_wsgi",
        ("self",),
        "concurrency.py: the body deadline (WEB_BODY_TIMEOUT) around the app",
    ),
    Internal(
        "gunicorn.workers.ggevent.GeventWorker",
        "wsgi",
        None,
        "concurrency.py and the post_worker_init hook wrap the app the worker serves",
    ),
    Internal(
        "gunicorn.workers.ggevent.GeventWorker",
        "handle_request",
        ("self", "listener_name", "req", "sock", "addr"),
        "concurrency.py: the rest of a refused body read after the answer (lingering.py)",
    ),
    Internal(
        "gunicorn.workers.ggevent.GeventWorker",
        "handle_error",
        ("self", "req", "client", "addr", "exc"),
        "concurrency.py: a request gunicorn refused is read on before its connection closes",
    ),
    Internal(
        "gunicorn.http.message.Message",
        "body",
        None,
        "concurrency.py: what the app left of the request's body (wsgi.input)",
    ),
    Internal(
        "gunicorn.http.message.Message",
        "headers",
        None,
        "concurrency.py: whether a request announced a body, left to read after its answer",
    ),
    Internal(
        "gunicorn.http.message.Message",
        "must_close",
        None,
        "concurrency.py: a body not read to its end closes the connection",
    ),
    Internal(
        "gunicorn.http.wsgi.Response",
        "default_headers",
        ("self",),
        "answers.py: the head of every answer, less its Server banner (no setting for it)",
    ),
    Internal(
        "gunicorn.util",
        "write_error",
        ("sock", "status_int", "reason", "mesg"),
        "answers.py: a refused request's answer as a problem document (no setting for it)",
    ),
    Internal(
        "gunicorn.glogging.Logger",
        "access_log",
        None,
        "access_log.py: the access lines, written as JSON events",
    ),
    Internal(
        "gunicorn.arbiter.Arbiter",
        "handle_term",
        ("self",),
        "draining.py: SIGTERM starts the drain instead of the stop, which comes after it",
    ),
    Internal(
        "gunicorn.arbiter.Arbiter",
        "signal",
        ("self", "sig", "frame"),
        "draining.py: the alarm that ends the drain is queued like gunicorn's signals",
    ),
    Internal(
        "gunicorn.arbiter.Arbiter",
        "SIG_NAMES",
        None,
        "draining.py: the queued SIGALRM is handled by the master's handle_alrm",
    ),
    Internal(
        "gunicorn.arbiter.Arbiter",
        "SIG_QUEUE",
        None,
        "forking.py: a stop signal queued while a worker was forked stops that worker",
    ),
)


def find(path: str) -> object:
    """The module, or the class in a module, that a dotted path names."""
    try:
        return importlib.import_module(path)
    except ImportError:
        module, _, name = path.rpartition(".")
        return getattr(importlib.import_module(module), name)


def assigned_on_instances(owner: type, name: str) -> bool:
    """Whether a class, or a class it derives from, sets self.<name> in one of its methods."""
    for cls in inspect.getmro(owner):
        if cls is object:
            continue
        tree = ast.parse(inspect.getsource(cls))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name)
                and node.value.id == "self"
                and node.attr == name
            ):
                return True
    return False


def problem_with(internal: Internal) -> str | None:
    """What no longer holds of one internal, in one line; None if it is as declared."""
    where = f"{internal.owner}.{internal.name}"
    try:
        owner = find(internal.owner)
    except (ImportError, AttributeError):
        return f"{internal.owner} is gone; it served {internal.why}"
    found = getattr(owner, internal.name, None)
    if internal.parameters is None:
        if found is None and not (
            inspect.isclass(owner) and assigned_on_instances(owner, internal.name)
        ):
            return f"{where} is gone; it served {internal.why}"
        return None
    if not callable(found):
        return f"{where} is gone or not callable; it served {internal.why}"
    parameters = tuple(inspect.signature(found).parameters)
    if parameters != internal.parameters:
        return f"{where} takes {parameters}, not {internal.parameters}; it served {internal.why}"
    return None


def problems() -> list[str]:
    """One line for each internal that does not hold in the gunicorn installed."""
    return [line for line in map(problem_with, INTERNALS) if line is not None]
