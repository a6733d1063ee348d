"""The todos resource: create, list (keyset paging), read, update and delete."""

from __future__ import annotations

import base64
import binascii
import logging
from datetime import datetime

from flask import Blueprint, Response, request, url_for
from spectree import Response as Responses
from sqlalchemy import select, tuple_
from werkzeug.exceptions import BadRequest

from .db import get_session
from .errors import Problem
from .models import Todo
from .openapi import VALIDATION_ERROR_STATUS, api
from .schemas import ProblemOut, TodoCreate, TodoListQuery, TodoOut, TodoPage, TodoUpdate

logger = logging.getLogger(__name__)

blueprint = Blueprint("todos", __name__, url_prefix="/api/todos")


@blueprint.before_request
def require_json_body() -> None:
    """Refuse a body that is not JSON before validation could mistake it for an empty one."""
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    if not request.is_json:
        raise Problem(415, "Send the body as application/json.")
    try:
        request.get_json()  # an oversized body raises 413 here
    except BadRequest:
        raise Problem(400, "The body is not valid JSON.") from None


@blueprint.after_request
def drop_type_of_empty_body(response: Response) -> Response:
    """A 204 has no body, so it has no content type either."""
    if response.status_code == 204:
        del response.headers["Content-Type"]
    return response


def encode_cursor(todo: Todo) -> str:
    """An opaque token for the position just after this todo in newest-first order."""
    raw = f"{todo.created_at.isoformat()}|{todo.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The position a cursor stands for, or a 422 naming the cursor."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, _, todo_id = raw.partition("|")
        position = datetime.fromisoformat(created_at), int(todo_id)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        position = None
    if position is None or position[0].tzinfo is None:
        raise Problem(
            VALIDATION_ERROR_STATUS,
            "The cursor is not one this service issued.",
            errors=[
                {
                    "field": "cursor",
                    "message": "pass back the next_cursor of an earlier page, unchanged",
                    "type": "cursor_invalid",
                }
            ],
        )
    return position


def find_todo(todo_id: int) -> Todo:
    """The todo with this id, or a 404."""
    todo = get_session().get(Todo, todo_id)
    if todo is None:
        raise Problem(404, f"There is no todo with id {todo_id}.")
    return todo


NOT_FOUND = {"HTTP_404": ProblemOut}
INVALID = {f"HTTP_{VALIDATION_ERROR_STATUS}": ProblemOut, "HTTP_415": ProblemOut}


@blueprint.get("")
@api.validate(query=TodoListQuery, resp=Responses(HTTP_200=TodoPage), tags=["todos"])
def list_todos(query: TodoListQuery) -> TodoPage:
    """List todos, newest first, one page at a time."""
    statement = select(Todo).order_by(Todo.created_at.desc(), Todo.id.desc())
    if query.cursor is not None:
        statement = statement.where(
            tuple_(Todo.created_at, Todo.id) < tuple_(*decode_cursor(query.cursor))
        )
    rows = list(get_session().scalars(statement.limit(query.limit + 1)))
    page = rows[: query.limit]
    next_cursor = encode_cursor(page[-1]) if len(rows) > query.limit else None
    return TodoPage(items=[TodoOut.model_validate(todo) for todo in page], next_cursor=next_cursor)


@blueprint.post("")
@api.validate(json=TodoCreate, resp=Responses(HTTP_201=TodoOut, **INVALID), tags=["todos"])
def create_todo(json: TodoCreate) -> tuple[TodoOut, int, dict[str, str]]:
    """Create a todo; its URL is in the Location header."""
    session = get_session()
    todo = Todo(title=json.title, done=json.done)
    session.add(todo)
    session.commit()
    logger.info("todo created", extra={"todo_id": todo.id})
    location = url_for("todos.get_todo", todo_id=todo.id)
    return TodoOut.model_validate(todo), 201, {"Location": location}


@blueprint.get("/<int:todo_id>")
@api.validate(resp=Responses(HTTP_200=TodoOut, **NOT_FOUND), tags=["todos"])
def get_todo(todo_id: int) -> TodoOut:
    """Read one todo."""
    return TodoOut.model_validate(find_todo(todo_id))


@blueprint.patch("/<int:todo_id>")
@api.validate(
    json=TodoUpdate, resp=Responses(HTTP_200=TodoOut, **NOT_FOUND, **INVALID), tags=["todos"]
)
def update_todo(todo_id: int, json: TodoUpdate) -> TodoOut:
    """Change the fields given, and only those."""
    session = get_session()
    todo = find_todo(todo_id)
    for field, value in json.model_dump(exclude_unset=True).items():
        setattr(todo, field, value)
    session.commit()
    return TodoOut.model_validate(todo)


@blueprint.delete("/<int:todo_id>")
@api.validate(resp=Responses("HTTP_204", **NOT_FOUND), tags=["todos"])
def delete_todo(todo_id: int) -> tuple[str, int]:
    """Delete one todo."""
    session = get_session()
    session.delete(find_todo(todo_id))
    session.commit()
    return "", 204
