"""Archiving todos in the background: the web process enqueues, a worker process does it."""

from __future__ import annotations

from celery.result import AsyncResult
from flask import Blueprint, Response, url_for
from kombu.exceptions import OperationalError as BrokerUnavailable
from spectree import Response as Responses

from .errors import problem_response
from .openapi import api
from .schemas import ProblemOut, TaskAccepted, TaskStatus
from .tasks import archive_todo
from .todos import find_todo

blueprint = Blueprint("archive", __name__)


@blueprint.errorhandler(BrokerUnavailable)
def broker_unavailable(_error: BrokerUnavailable) -> Response:
    """A broker that is down is the caller's 503, and nothing was enqueued."""
    return problem_response(
        503, "The task queue is not answering; try again shortly.", headers={"Retry-After": "5"}
    )


@blueprint.post("/api/todos/<int:todo_id>/archive")
@api.validate(resp=Responses(HTTP_202=TaskAccepted, HTTP_404=ProblemOut), tags=["todos"])
def archive(todo_id: int) -> tuple[TaskAccepted, int, dict[str, str]]:
    """Archive a todo in the background; watch the task at the Location given."""
    find_todo(todo_id)
    task = archive_todo.delay(todo_id)
    status_url = url_for("archive.task_status", task_id=task.id)
    return TaskAccepted(task_id=task.id, status_url=status_url), 202, {"Location": status_url}


@blueprint.get("/api/tasks/<task_id>")
@api.validate(resp=Responses(HTTP_200=TaskStatus), tags=["tasks"])
def task_status(task_id: str) -> TaskStatus:
    """Celery's state of a task (PENDING until a worker has taken it) and its result."""
    result: AsyncResult[bool] = AsyncResult(task_id, app=archive_todo.app)
    done = result.successful()
    return TaskStatus(task_id=task_id, state=result.state, result=result.result if done else None)
