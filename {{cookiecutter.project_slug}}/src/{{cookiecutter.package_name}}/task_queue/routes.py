"""The task queue's route: archiving a todo in the background, enqueued by the web process."""

from __future__ import annotations

from flask import Blueprint, Response, url_for
from kombu.exceptions import OperationalError as BrokerUnavailable
from pydantic import BaseModel
from spectree import Response as Responses

from ..errors import problem_response
from ..openapi import api, problems
from ..todos import find_todo
from .tasks import archive_todo

blueprint = Blueprint("archive", __name__)


class TaskAccepted(BaseModel):
    """Body of a 202: the task that will do the work, and the resource it will change."""

    task_id: str
    todo_url: str


@blueprint.errorhandler(BrokerUnavailable)
def broker_unavailable(_error: BrokerUnavailable) -> Response:
    """A broker that is down is the caller's 503, and nothing was enqueued."""
    return problem_response(
        503, "The task queue is not answering; try again shortly.", headers={"Retry-After": "5"}
    )


@blueprint.post("/api/todos/<int:todo_id>/archive")
@api.validate(resp=Responses(HTTP_202=TaskAccepted, **problems(404, 503)), tags=["todos"])
def archive(todo_id: int) -> tuple[TaskAccepted, int, dict[str, str]]:
    """Archive a todo in the background; its archived_at is set once a worker has done it."""
    find_todo(todo_id)
    task = archive_todo.delay(todo_id)
    todo_url = url_for("todos.get_todo", todo_id=todo_id)
    return TaskAccepted(task_id=task.id, todo_url=todo_url), 202, {"Location": todo_url}
