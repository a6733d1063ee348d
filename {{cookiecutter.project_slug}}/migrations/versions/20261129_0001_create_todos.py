"""Create the todos table.

Revision ID: 0001
Revises:
Create Date: 2026-11-29 00:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the todos table and the index behind newest-first paging."""
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.create_table(
        "todos",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("done", sa.Boolean(), server_default="false", nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_todos")),
    )
    op.create_index("ix_todos_created_at_id", "todos", ["created_at", "id"])


def downgrade() -> None:
    """Drop the todos table."""
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.drop_index("ix_todos_created_at_id", table_name="todos")
    op.drop_table("todos")
