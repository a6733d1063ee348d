"""What the task queue option adds to the data model: when a todo was archived."""

from __future__ import annotations

from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.orm import MappedColumn, mapped_column

ARCHIVED_AT = "archived_at"


def todo_columns() -> dict[str, MappedColumn[Any]]:
    """The todo's columns this option adds: archived_at, set once by the archive task
    (worker process) and null until then. As a column of the todos row itself, every read
    of a todo shows it (schemas.TodoOut shows each column of the row)."""
    return {ARCHIVED_AT: mapped_column(DateTime(timezone=True), nullable=True)}
