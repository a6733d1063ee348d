"""Add todos.archived_at, set by the worker's archive task.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 00:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the nullable archived_at column."""
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.add_column("todos", sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop archived_at."""
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.drop_column("todos", "archived_at")
