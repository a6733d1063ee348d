"""The worker process type, as the Procfile's worker line runs it (factor VIII).

It builds a Flask app with the data layer only (no HTTP routes) so tasks run inside an
app context with the same settings, database and logging as the web process.
"""

from __future__ import annotations

from typing import Any

from celery.signals import setup_logging, worker_init, worker_process_init
from flask import Flask

from ..chosen_options import call
from ..config import settings_or_exit
from ..db import init_app as init_database
from ..logging import configure_logging
from .celery_app import make_celery
from .settings import TaskQueueSettings

settings = settings_or_exit("celery")
queue_settings = TaskQueueSettings.load_or_exit("celery")
flask_app = Flask(__name__)
flask_app.extensions["settings"] = settings
init_database(flask_app, settings)
celery_app = make_celery(flask_app, queue_settings)
# The limits are set here, in the worker alone: a limit configured where a task is enqueued
# travels in the message and wins over the worker's, so the web process must not set one.
celery_app.conf.update(
    task_soft_time_limit=queue_settings.task_soft_time_limit,
    task_time_limit=queue_settings.task_time_limit,
    # Only the prefork pool kills a task stuck in C code (a blocked database call, which
    # the soft limit cannot interrupt) at the hard limit: solo, threads and gevent do not.
    worker_pool="prefork",
)


@setup_logging.connect
def use_service_logging(**_kwargs: Any) -> None:
    """Log as the web process does (JSON lines on stdout) instead of Celery's own format."""
    configure_logging(settings)


@worker_init.connect
def init_options_in_worker(**_kwargs: Any) -> None:
    """In the worker's main process, before it forks its pool: the chosen options' part."""
    call("init_task_worker", flask_app)


@worker_process_init.connect
def init_options_in_pool_process(**_kwargs: Any) -> None:
    """In each process of the worker's pool, once forked: the chosen options' part."""
    call("init_task_worker_process", flask_app)
