<%!
    def literal(value):
        """A revision id (or a tuple of them) as Python, in the double quotes ruff formats."""
        if value is None:
            return "None"
        if isinstance(value, str):
            return f'"{value}"'
        return "(" + ", ".join(f'"{one}"' for one in value) + ("," if len(value) == 1 else "") + ")"
%>\
"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""

from collections.abc import Sequence

% if "sa." in (upgrades or "") + (downgrades or ""):
import sqlalchemy as sa
% endif
from alembic import op
${imports if imports else ""}
revision: str = ${literal(up_revision)}
down_revision: str | None = ${literal(down_revision)}
branch_labels: str | Sequence[str] | None = ${literal(branch_labels)}
depends_on: str | Sequence[str] | None = ${literal(depends_on)}

# The service keeps serving while this runs, and `make lint` checks its SQL with squawk.
# What stops it (docs/factors/12-admin-processes.md says more):
# - a NOT NULL column without a default on a table that has rows: add it nullable or with
#   a default, fill it in batches, and make it NOT NULL in a later release;
# - an index built without CONCURRENTLY blocks writes until it is built: pass
#   postgresql_concurrently=True and if_not_exists=True inside
#   `with op.get_context().autocommit_block():`;
# - a rewrite of a whole table (a column's type changed, a volatile default) holds it
#   locked throughout: add a new column and copy into it instead.
# A strong lock waits behind the queries running, and every new query waits behind it: give
# up after lock_timeout (the release fails and can be run again) rather than queue them all.


def upgrade() -> None:
    """Apply this revision."""
    op.execute("SET LOCAL lock_timeout = '5s'")
% if upgrades:
    ${upgrades}
% endif


def downgrade() -> None:
    """Revert this revision."""
    op.execute("SET LOCAL lock_timeout = '5s'")
% if downgrades:
    ${downgrades}
% endif
