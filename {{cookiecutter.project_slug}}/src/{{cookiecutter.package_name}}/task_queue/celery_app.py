"""The Celery app of a process: the broker's settings, and each task run inside an app
context of the process's Flask app, with the log context of the request that enqueued it."""

from __future__ import annotations

from typing import Any

import redis
from celery import Celery, Task
from celery.signals import before_task_publish
from flask import Flask

from ..db import READINESS_CHECKS
from ..logging import bind_log_context, log_context, reset_log_context
from .settings import TaskQueueSettings

# Where the tasks are defined: the worker imports it as it starts, to know them.
TASKS_MODULE = f"{__package__}.tasks"


def make_celery(app: Flask, settings: TaskQueueSettings) -> Celery[Task[Any, Any]]:
    """Make the Celery app of this process; each task runs inside an app context of `app`."""

    class FlaskTask(Task[Any, Any]):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            token = bind_log_context(
                task_id=self.request.id, request_id=getattr(self.request, "request_id", None)
            )
            try:
                with app.app_context():
                    return self.run(*args, **kwargs)
            finally:
                reset_log_context(token)

    celery: Celery[Task[Any, Any]] = Celery(
        app.import_name, task_cls=FlaskTask, include=[TASKS_MODULE]
    )
    celery.conf.update(
        broker_url=settings.redis_url,
        # A task's effect is visible in the database, so no result store is kept.
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        # Acknowledge a task only when it is done, so one whose worker dies is run again.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={
            "visibility_timeout": settings.broker_visibility_timeout,
            # Look for tasks of dead workers often enough to redeliver them on time.
            "unacked_restore_interval": min(10, max(1, settings.broker_visibility_timeout // 3)),
            "unacked_restore_throttle": 1,
        },
        # A broker that is down fails the request quickly (503) instead of hanging it.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
        broker_connection_retry_on_startup=True,
        worker_concurrency=settings.worker_concurrency,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )
    celery.set_default()
    before_task_publish.connect(carry_request_id, dispatch_uid="carry_request_id")
    app.extensions["celery"] = celery
    app.extensions.setdefault(READINESS_CHECKS, {})["redis"] = lambda: ping_redis(
        settings.redis_url
    )
    return celery


def ping_redis(url: str) -> None:
    """Raise unless Redis answers."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


def carry_request_id(headers: dict[str, Any], **_kwargs: Any) -> None:
    """Send the id of the request that enqueued a task along with it, for the worker's logs."""
    headers.setdefault("request_id", log_context.get().get("request_id"))
