"""The background tasks: what a worker process runs (factor VIII)."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import func, update
from sqlalchemy.exc import OperationalError

from ..db import get_session
from ..models import Todo
from .data_model import ARCHIVED_AT

logger = logging.getLogger(__name__)

# A task that meets a database hiccup is retried this often, waiting longer each time.
MAX_RETRIES = 5
RETRY_BACKOFF_MAX_SECONDS = 60


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
    archived_at = Todo.__table__.c[ARCHIVED_AT]
    archived = session.execute(
        update(Todo)
        .where(Todo.id == todo_id, archived_at.is_(None))
        .values({archived_at: func.now()})
        .returning(Todo.id)
    ).first()
    session.commit()
    message = "todo archived" if archived else "todo already archived, or gone"
    logger.info(message, extra={"todo_id": todo_id})
    return archived is not None
