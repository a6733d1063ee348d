"""Traces and metrics of the task queue: what this option adds where the task queue option is
chosen too, through the hooks that option calls (see chosen_options.py).

A task enqueued by a request carries the request's trace in its message headers, so its run in
the worker is a span of the same trace. The worker process counts its tasks by outcome and, when
METRICS_PORT is set for it, serves those counts there (the worker has no HTTP port otherwise).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from celery.signals import task_failure, task_retry, task_success

from .settings import ObservabilitySettings

if TYPE_CHECKING:
    from flask import Flask
    from opentelemetry.sdk.trace import TracerProvider
    from prometheus_client import Counter

    from ..web_server.wsgi import WsgiApp


def trace_task_messages(provider: TracerProvider) -> None:
    """Put the current trace into each task message sent, and continue it where it is run."""
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    for instrumentor in (CeleryInstrumentor(), RedisInstrumentor()):  # type: ignore[no-untyped-call]
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=provider)


def untraced_probes(app: WsgiApp) -> WsgiApp:
    """The app, with no span at all for a probe or a scrape: the readiness check pings the
    broker, and the Redis instrumentation would make each ping a trace of its own."""
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    from .traces import UNTRACED_PATHS

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") in UNTRACED_PATHS:
            with suppress_instrumentation():
                return app(environ, start_response)
        return app(environ, start_response)

    return serve


def init_task_publisher(app: Flask) -> None:
    """In the web process: the tasks its requests enqueue carry their trace."""
    from . import traces

    settings = ObservabilitySettings.load_or_exit(app.import_name)
    if not settings.otel_sdk_disabled:
        provider = traces.tracer_provider(settings, app.extensions["settings"].release_id)
        trace_task_messages(provider)
        app.wsgi_app = untraced_probes(app.wsgi_app)  # type: ignore[method-assign,assignment]


def init_task_worker(_app: Flask) -> None:
    """In the worker's main process, before it forks the pool: count the tasks its pool runs,
    and serve the counts."""
    from . import metrics

    for signal, count in (
        (task_success, count_success),
        (task_failure, count_failure),
        (task_retry, count_retry),
    ):
        signal.connect(count, dispatch_uid=count.__name__)
    settings = ObservabilitySettings.load_or_exit("celery")
    if settings.metrics_enabled and settings.metrics_port is not None:
        metrics.multiprocess_directory(settings.prometheus_multiproc_dir)
        metrics.serve_on_own_port(settings.metrics_port)


def init_task_worker_process(app: Flask) -> None:
    """In each process of the worker's pool, once forked: its spans, and its log lines' ids."""
    from ..db import EXTENSION_KEY as DATABASE
    from . import traces

    settings = ObservabilitySettings.load_or_exit("celery")
    if settings.otel_sdk_disabled:
        return
    provider = traces.tracer_provider(settings, app.extensions["settings"].release_id)
    trace_task_messages(provider)
    traces.trace_database(app.extensions[DATABASE].engine, provider)
    traces.stamp_log_lines()


@functools.cache
def tasks_counter() -> Counter:
    """The count of tasks run, by task and outcome; made on first use, in a pool process."""
    from prometheus_client import Counter

    return Counter("celery_tasks", "Tasks the worker ran, by outcome", ("task", "outcome"))


def count_outcome(outcome: str, sender: Any) -> None:
    """Count one task run, when the worker keeps metrics (METRICS_PORT set for it)."""
    from . import metrics

    if metrics.PROCESS_FOLDER:
        name = getattr(sender, "name", None) or str(sender)
        tasks_counter().labels(name, outcome).inc()


def count_success(sender: Any = None, **_kwargs: Any) -> None:
    """A task returned."""
    count_outcome("success", sender)


def count_failure(sender: Any = None, **_kwargs: Any) -> None:
    """A task raised and will not be retried."""
    count_outcome("failure", sender)


def count_retry(sender: Any = None, **_kwargs: Any) -> None:
    """A task raised and was scheduled to run again."""
    count_outcome("retry", sender)
