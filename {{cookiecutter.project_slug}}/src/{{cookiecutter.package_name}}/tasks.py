"""Background tasks, and the Celery app that runs them inside a Flask app context (factor VIII)."""

from __future__ import annotations

import logging
from typing import Any

import redis
from celery import Celery, Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import before_task_publish
from flask import Flask
from sqlalchemy import func, update
from sqlalchemy.exc import OperationalError

from .db import READINESS_CHECKS, get_session
from .logging import bind_log_context, log_context, reset_log_context
from .models import Todo
from .options.task_queue import ARCHIVED_AT, TaskQueueSettings

logger = logging.getLogger(__name__)

# A task that meets a database hiccup is retried this often, waiting longer each time.
MAX_RETRIES = 5
RETRY_BACKOFF_MAX_SECONDS = 60


def init_app(app: Flask, settings: TaskQueueSettings) -> Celery[Task[Any, Any]]:
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

    celery: Celery[Task[Any, Any]] = Celery(app.import_name, task_cls=FlaskTask)
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


@before_task_publish.connect
def carry_request_id(headers: dict[str, Any], **_kwargs: Any) -> None:
    """Send the id of the request that enqueued a task along with it, for the worker's logs."""
    headers.setdefault("request_id", log_context.get().get("request_id"))


# A task told to stop at its soft time limit has had its transaction rolled back; it is
# retried like a database hiccup, as what held it up (a lock, say) may be gone by then.
@shared_task(
    autoretry_for=(OperationalError, SoftTimeLimitExceeded),
    retry_backoff=True,
    retry_backoff_max=RETRY_BACKOFF_MAX_SECONDS,
    max_retries=MAX_RETRIES,
)
def archive_todo(todo_id: int) -> bool:
    """Archive a todo; running it again changes nothing. True if this run archived it."""
    session = get_session()
    archived = session.execute(
        update(Todo)
        .where(Todo.id == todo_id, ARCHIVED_AT.is_(None))
        .values({ARCHIVED_AT: func.now()})
        .returning(Todo.id)
    ).first()
    session.commit()
    message = "todo archived" if archived else "todo already archived, or gone"
    logger.info(message, extra={"todo_id": todo_id})
    return archived is not None
