"""Metrics in Prometheus's text format, summed over every worker of the web process.

Each gunicorn worker is a process of its own, and a scrape reaches one of them: so every
worker writes its counts to files in one folder (prometheus_client's multiprocess mode),
and whichever worker answers GET /metrics reads them all. The folder is made when the web
process starts (or PROMETHEUS_MULTIPROC_DIR names it) and emptied then; gunicorn's master
tells this module when a worker dies (gunicorn.conf.py), so its gauges stop counting.

Requests are counted by route template (/api/todos/<int:todo_id>), never by raw path, so
that the number of series stays bounded whatever paths the clients send. A process notes
what it answers in memory and writes it to its files once a second (Tally), with its pools'
figures: a scrape sees a worker's counts at most a second late, and the request pays for a
note instead of the writes.
"""

from __future__ import annotations

import atexit
import collections
import functools
import logging
import os
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, has_request_context, request
from spectree import Response as Responses
from sqlalchemy import Engine

from ..config import share_with_children
from ..db import EXTENSION_KEY as DATABASE
from ..openapi import documented
from .settings import ObservabilitySettings

if TYPE_CHECKING:
    # Imported where used: prometheus_client must come after the folder is chosen.
    from prometheus_client import CollectorRegistry, Counter, Histogram

    from ..web_server.wsgi import WsgiApp

# prometheus_client reads it from the environment alone, and the workers inherit it.
MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# The label of a request no route matched (a 404 or 405 of the router).
UNMATCHED_ROUTE = "<unmatched>"
# The methods named as they are; any other a client sends is named OTHER_METHOD, so that
# made-up methods cannot add series (or span names, traces.py) without bound, as
# OpenTelemetry's semantic conventions say.
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
OTHER_METHOD = "_OTHER"
# Seconds: from 5 ms, where a read from the pool lands, to 10 s, the statement timeout.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Seconds between two writes of a process's counts and pool figures to its files.
FLUSH_SECONDS = 1.0

blueprint = Blueprint("metrics", __name__)
logger = logging.getLogger(__name__)


# The folder of this process, once the first app built in it has chosen it.
PROCESS_FOLDER: dict[str, Path] = {}


def multiprocess_directory(chosen: Path | None) -> Path:
    """The folder every process of this server writes its metrics to, emptied for a new start.

    Made once per process, in the first one that builds the app (gunicorn's master, with
    preload), before prometheus_client is imported; the workers it forks inherit the variable.
    A later app in the same process (tests build many) reads that variable as its choice: it
    gets the same folder, not emptied under the files the earlier apps' counts are in.
    """
    if "folder" in PROCESS_FOLDER:
        return PROCESS_FOLDER["folder"]
    if chosen is not None:
        chosen.mkdir(parents=True, exist_ok=True)
        for stale in chosen.glob("*.db"):  # counts of a server that ran here before
            stale.unlink()
        folder = chosen
    else:
        folder = Path(tempfile.mkdtemp(prefix="metrics-"))
        atexit.register(remove_if_mine, folder, os.getpid())
    share_with_children(MULTIPROCESS_VARIABLE, str(folder))
    PROCESS_FOLDER["folder"] = folder
    return folder


def remove_if_mine(folder: Path, owner: int) -> None:
    """At exit, remove the folder this process made (a forked worker exits too: not its own)."""
    if os.getpid() == owner:
        shutil.rmtree(folder, ignore_errors=True)


class ServiceMetrics:
    """The service's metrics; made once per process, as prometheus_client wants."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        labels = ("method", "route", "status")
        self.requests = Counter("http_requests", "Requests answered by the app", labels)
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time the app took to answer a request",
            labels,
            buckets=DURATION_BUCKETS,
        )
        # livesum: the sum over the workers alive now; a dead worker's connections are gone.
        self.pool_in_use = Gauge(
            "db_pool_connections_in_use",
            "Database connections checked out of the pools",
            multiprocess_mode="livesum",
        )
        self.pool_overflow = Gauge(
            "db_pool_overflow_connections",
            "Connections opened beyond the pools' size",
            multiprocess_mode="livesum",
        )
        # The labelled series of each (method, route, status) seen, found once.
        self.request_series: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}

    def series_of(self, method: str, route: str, status: str) -> tuple[Counter, Histogram]:
        """The request count and duration series of one method, route and status."""
        key = (method_label(method), route, status)
        series = self.request_series.get(key)
        if series is None:
            series = (self.requests.labels(*key), self.duration.labels(*key))
            self.request_series[key] = series
        return series


# prometheus_client refuses a second metric of the same name in a process.
@functools.cache
def service_metrics() -> ServiceMetrics:
    """This process's metrics, made on first use."""
    return ServiceMetrics()


# One answered request: method, route template (None if no route matched), status, seconds.
Answer = tuple[str, str | None, str, float]


class Tally:
    """What this process has served and not yet written to its metric files, and the thread
    that writes it every FLUSH_SECONDS.

    Each write to a file of the folder takes a lock and several calls into prometheus_client:
    made for every request, those writes were most of what the metrics cost it, where a
    note in a queue costs one call. The price: a worker killed outright loses its last
    second of counts (one stopped by gunicorn writes them as it exits). The thread starts
    with the first request a process serves, so gunicorn's master, which serves none, has
    no thread when it forks. The same thread samples the pools, so no pool event runs code
    of ours either.
    """

    def __init__(self) -> None:
        self.answered: collections.deque[Answer] = collections.deque()
        self.engines: weakref.WeakSet[Engine] = weakref.WeakSet()
        self.lock = threading.Lock()  # one writer at a time: the thread, the page, the exit
        self.writer: threading.Thread | None = None
        self.stopped = threading.Event()
        os.register_at_fork(after_in_child=self.forget)
        atexit.register(self.write_if_serving)

    def watch(self, engine: Engine) -> None:
        """Sample this engine's pool with each write."""
        with self.lock:  # the thread may be iterating the set
            self.engines.add(engine)

    def forget(self) -> None:
        """In a forked child: the parent writes what it served, and its thread is not here."""
        self.answered.clear()
        self.lock = threading.Lock()
        self.writer = None
        self.stopped = threading.Event()

    def serving(self) -> None:
        """Start the writing thread of this process, if it has none yet."""
        with self.lock:
            if self.writer is None:
                self.writer = threading.Thread(
                    target=self.write_every_interval, name="metrics-writer", daemon=True
                )
                self.writer.start()

    def write_every_interval(self) -> None:
        """The thread: write what was served every FLUSH_SECONDS, until stopped."""
        while not self.stopped.wait(FLUSH_SECONDS):
            try:
                self.write()
            except Exception:  # a thread that died would leave the queue growing for ever
                logger.exception("metrics not written")

    def write_if_serving(self) -> None:
        """At exit: write the last counts of a process that served requests."""
        if self.writer is not None:
            self.write()

    def write(self) -> None:
        """Write the requests answered since the last write, then the pools' figures.

        In that order: a scrape that shows a pool figure shows every request answered
        before it was sampled.
        """
        metrics = service_metrics()
        with self.lock:
            counts: collections.Counter[tuple[str, str, str]] = collections.Counter()
            while self.answered:
                method, route, status, seconds = self.answered.popleft()
                key = (method, route or UNMATCHED_ROUTE, status)
                counts[key] += 1
                metrics.series_of(*key)[1].observe(seconds)
            for key, count in counts.items():
                metrics.series_of(*key)[0].inc(count)
            pools: list[Any] = [engine.pool for engine in list(self.engines)]
            metrics.pool_in_use.set(sum(pool.checkedout() for pool in pools))
            metrics.pool_overflow.set(sum(max(pool.overflow(), 0) for pool in pools))


@functools.cache
def tally() -> Tally:
    """This process's tally, made on first use."""
    return Tally()


def counted(app: WsgiApp) -> WsgiApp:
    """The app, noting each request under its route template and status as it answers.

    Noted in start_response, which the app calls from inside the request's context (a Flask
    response starts itself before the context is popped): the matched route is still at
    hand there, and the answer is complete but for sending its body.
    """
    answers = tally()

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if answers.writer is None:  # before the request: it may hold a connection long
            answers.serving()
        started = time.perf_counter()

        def note_then_start(status: str, headers: Any, exc_info: Any = None) -> Any:
            seconds = time.perf_counter() - started
            answer = (environ.get("REQUEST_METHOD", ""), matched_route(), status[:3], seconds)
            answers.answered.append(answer)
            return start_response(status, headers, exc_info)

        return app(environ, note_then_start)

    return serve


def method_label(method: str) -> str:
    """The method as the signals name it: itself if it is a known one, else OTHER_METHOD."""
    return method if method in KNOWN_METHODS else OTHER_METHOD


def matched_route() -> str | None:
    """The route template the current request matched (/api/todos/<int:todo_id>), if any.

    Flask matched it already; read in start_response, which the app calls from inside the
    request's context, it costs nothing to find again.
    """
    rule = request.url_rule if has_request_context() else None
    return rule.rule if rule is not None else None


def summed_registry() -> CollectorRegistry:
    """A registry that reads every worker's files of the folder, summing them."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


@blueprint.get("/metrics")
@documented(resp=Responses(HTTP_200=None), tags=["health"])
def metrics_page() -> Response:
    """The scrape target: every worker's metrics, as Prometheus reads them."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    tally().write()  # this worker's own counts are at most FLUSH_SECONDS old; now, none
    return Response(generate_latest(summed_registry()), content_type=CONTENT_TYPE_LATEST)


@functools.cache
def serve_on_own_port(port: int) -> None:
    """Serve the metrics on a port of their own, from the calling process (gunicorn's master)."""
    from prometheus_client import start_http_server

    registry = summed_registry()
    start_http_server(port, addr="0.0.0.0", registry=registry)  # noqa: S104 - port binding (VII)


def forget_process(pid: int) -> None:
    """Drop the gauges of a worker that has exited; its counts stay in the totals."""
    if PROCESS_FOLDER:  # metrics are kept in this server
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def init_app(app: Flask, settings: ObservabilitySettings) -> None:
    """Count the app's requests and pool use; serve them at /metrics unless told otherwise."""
    if not settings.metrics_enabled:
        return
    multiprocess_directory(settings.prometheus_multiproc_dir)
    service_metrics()
    app.wsgi_app = counted(app.wsgi_app)  # type: ignore[method-assign,assignment]
    tally().watch(app.extensions[DATABASE].engine)
    if settings.metrics_port is None:
        app.register_blueprint(blueprint)
