"""The least a Flask + PostgreSQL service can be: the baked `GET /api/todos/<id>`'s SELECT
on a pooled psycopg2 connection (the limit of that endpoint).

Same columns, table and JSON as the baked endpoint.
"""

import os
from datetime import UTC, datetime

from flask import Flask, abort
from psycopg2.pool import SimpleConnectionPool

app = Flask(__name__)
# gunicorn imports this module in each worker (no --preload): one pool per worker process.
pool = SimpleConnectionPool(1, 1, os.environ["DATABASE_URL"])


def utc(value: datetime) -> str:
    """A timestamp as the baked API writes it."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@app.get("/api/todos/<int:todo_id>")
def get_todo(todo_id: int) -> dict[str, object]:
    """One todo by id, or 404."""
    conn = pool.getconn()
    conn.autocommit = True  # a client-side flag: no BEGIN, so the read is one round trip
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT id, title, done, created_at, updated_at FROM todos WHERE id = %s",
                (todo_id,),
            )
            row = cursor.fetchone()
    finally:
        pool.putconn(conn)
    if row is None:
        abort(404)
    return {
        "id": row[0],
        "title": row[1],
        "done": row[2],
        "created_at": utc(row[3]),
        "updated_at": utc(row[4]),
    }
