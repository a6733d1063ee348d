"""The least an app on the baked stack can be: Flask and a SQLAlchemy Core engine over
psycopg2, answering the baked service's reads (the limit of `GET /api/todos/<id>` and of
the first page of `GET /api/todos`).

Same statements, columns and JSON as the baked endpoints, cursor included. The engine runs
in autocommit: psycopg2's autocommit is a flag of the client, set once per connection, so a
read is its one SELECT, with no BEGIN, no ROLLBACK and nothing sent at checkin.
"""

import base64
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from flask import Flask, abort, request
from sqlalchemy import create_engine, make_url, text

app = Flask(__name__)
# gunicorn imports this module in each worker (no --preload): one engine per worker process.
# SQLAlchemy 2.1 reads postgresql:// as psycopg 3; this stack has psycopg2.
engine = create_engine(
    make_url(os.environ["DATABASE_URL"]).set(drivername="postgresql+psycopg2"),
    isolation_level="AUTOCOMMIT",
)
COLUMNS = "id, title, done, created_at, updated_at"
TODO_BY_ID = text(f"SELECT {COLUMNS} FROM todos WHERE id = :todo_id")  # noqa: S608 - constant
NEWEST_FIRST = text(
    f"SELECT {COLUMNS} FROM todos ORDER BY created_at DESC, id DESC LIMIT :rows"  # noqa: S608
)


def utc(value: datetime) -> str:
    """A timestamp as the baked API writes it."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def todo_json(row: Sequence[Any]) -> dict[str, object]:
    """One todo as the baked API shows it."""
    return {
        "id": row[0],
        "title": row[1],
        "done": row[2],
        "created_at": utc(row[3]),
        "updated_at": utc(row[4]),
    }


def cursor_after(created_at: datetime, todo_id: int) -> str:
    """The baked service's next_cursor for the position after this todo."""
    raw = f"{created_at.isoformat()}|{todo_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@app.get("/healthz")
def healthz() -> dict[str, str]:
    """The probe the bench waits for: a constant."""
    return {"status": "ok"}


@app.get("/api/todos/<int:todo_id>")
def get_todo(todo_id: int) -> dict[str, object]:
    """One todo by id, or 404."""
    with engine.connect() as connection:
        row = connection.execute(TODO_BY_ID, {"todo_id": todo_id}).one_or_none()
    if row is None:
        abort(404)
    return todo_json(row)


@app.get("/api/todos")
def list_todos() -> dict[str, object]:
    """The first page, newest first: one row more than the page says whether there is a next."""
    limit = request.args.get("limit", 20, type=int)
    with engine.connect() as connection:
        rows = connection.execute(NEWEST_FIRST, {"rows": limit + 1}).all()
    page = rows[:limit]
    next_cursor = cursor_after(page[-1][3], page[-1][0]) if len(rows) > limit else None
    return {"items": [todo_json(row) for row in page], "next_cursor": next_cursor}
