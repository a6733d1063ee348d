"""The observability option, as the core reaches it (see chosen_options.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .settings import ObservabilitySettings

if TYPE_CHECKING:
    from flask import Flask

SETTINGS = ObservabilitySettings


def init_app(app: Flask) -> None:
    """Give the web app its spans, its metrics and its error reports."""
    # Imported here: the migrations and gunicorn's master read this module for the settings
    # alone, and need none of the three SDKs.
    from . import error_reports, metrics, traces

    settings = ObservabilitySettings.load_or_exit(app.import_name)
    traces.init_app(app, settings)
    metrics.init_app(app, settings)
    error_reports.init_app(app, settings)


def web_server_ready() -> None:
    """In the web server's master, once it listens: serve the metrics on METRICS_PORT, if set."""
    settings = ObservabilitySettings.load()
    if settings.metrics_enabled and settings.metrics_port is not None:
        from .metrics import serve_on_own_port

        serve_on_own_port(settings.metrics_port)


def web_worker_exited(pid: int) -> None:
    """In the web server's master: a worker has exited, so its gauges no longer count."""
    from .metrics import forget_process

    forget_process(pid)


def web_worker_stopping() -> None:
    """In a web worker that has stopped serving: send the spans not exported yet. Left to
    interpreter exit, as the SDK would, the last batch was lost: by then a gevent worker can
    no longer start the thread the export needs."""
    from .traces import shut_down

    shut_down()
