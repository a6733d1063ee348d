"""Metrics in Prometheus's text format, summed over every worker of the web process.

Each gunicorn worker is a process of its own, and a scrape reaches one of them: so every
worker writes its counts to files in one folder (prometheus_client's multiprocess mode),
and whichever worker answers GET /metrics reads them all. The folder is made when the web
process starts (or PROMETHEUS_MULTIPROC_DIR names it) and emptied then; gunicorn's master
tells this module when a worker dies (gunicorn.conf.py), so its gauges stop counting.

Requests are counted by route template (/api/todos/<int:todo_id>), never by raw path, so
that the number of series stays bounded whatever paths the clients send.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, has_request_context, request
from spectree import Response as Responses
from sqlalchemy import Engine, event

from .config import share_with_children
from .db import EXTENSION_KEY as DATABASE
from .openapi import documented
from .options.observability import ObservabilitySettings

if TYPE_CHECKING:
    # Imported where used: prometheus_client must come after the folder is chosen.
    from prometheus_client import CollectorRegistry, Counter, Histogram

    from .request_ids import WsgiApp

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

blueprint = Blueprint("metrics", __name__)


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
        # The labelled series of each (method, route, status) seen, found once: looking
        # them up on every request cost as much as counting it.
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


def counted(app: WsgiApp) -> WsgiApp:
    """The app, counting each request under its route template and status as it answers.

    The count is taken in start_response, which the app calls from inside the request's
    context (a Flask response starts itself before the context is popped): the matched
    route is still at hand there, and the answer is complete but for sending its body.
    """

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()

        def count_then_start(status: str, headers: Any, exc_info: Any = None) -> Any:
            count_request(environ.get("REQUEST_METHOD", ""), status.split(" ", 1)[0], started)
            return start_response(status, headers, exc_info)

        return app(environ, count_then_start)

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


def count_request(method: str, status: str, started: float) -> None:
    """Count one answered request of the current request context."""
    route = matched_route() or UNMATCHED_ROUTE
    requests, duration = service_metrics().series_of(method, route, status)
    requests.inc()
    duration.observe(time.perf_counter() - started)


class PoolGauges:
    """The pool gauges of this process, written only when a value changes: each write locks
    and writes the process's file, and the overflow, say, is nearly always 0."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics
        self.in_use: int | None = None
        self.overflow: int | None = None
        # A forked worker starts files of its own, at 0, whatever the parent last wrote.
        os.register_at_fork(after_in_child=self.forget)

    def forget(self) -> None:
        """Write the next values whatever they are."""
        self.in_use = self.overflow = None

    def show(self, in_use: int, overflow: int) -> None:
        """Set the gauges that changed."""
        if in_use != self.in_use:
            self.metrics.pool_in_use.set(in_use)
            self.in_use = in_use
        if overflow != self.overflow:
            self.metrics.pool_overflow.set(overflow)
            self.overflow = overflow


@functools.cache
def pool_gauges() -> PoolGauges:
    """This process's pool gauges, made on first use."""
    return PoolGauges(service_metrics())


def watch_pool(engine: Engine) -> None:
    """Keep the pool gauges up to date as connections leave and return to it."""
    gauges = pool_gauges()

    # The engine's pool at the time: a forked worker disposes of the pool it inherited.
    def checked_out(*_args: Any) -> None:
        pool: Any = engine.pool
        gauges.show(pool.checkedout(), max(pool.overflow(), 0))

    def checked_in(*_args: Any) -> None:
        pool: Any = engine.pool
        size, out, overflow = pool.size(), pool.checkedout(), pool.overflow()
        # SQLAlchemy calls this before the connection is back: the pool still counts it as
        # checked out, and a full pool closes it only afterwards, one overflow the fewer.
        closed = 1 if size - out + overflow >= size else 0
        gauges.show(out - 1, max(overflow - closed, 0))

    event.listen(engine, "checkout", checked_out)
    event.listen(engine, "checkin", checked_in)


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
    watch_pool(app.extensions[DATABASE].engine)
    if settings.metrics_port is None:
        app.register_blueprint(blueprint)
