"""`make lint` reads the SQL of each migration with squawk and names each locking hazard."""

from __future__ import annotations

from pathlib import Path

import pytest
from scripts.lint_migrations import lint_migrations, main

from .databases import alembic_config, plant_migration

# squawk runs as a program of its own.
pytestmark = pytest.mark.processes

NOT_NULL_WITHOUT_DEFAULT = (
    'op.add_column("todos", sa.Column("rank", sa.BigInteger(), nullable=False))'
)
INDEX_WITHOUT_CONCURRENTLY = 'op.create_index("ix_todos_title", "todos", ["title"])'
# The safe ways that migrations/script.py.mako names.
NULLABLE_COLUMN = 'op.add_column("todos", sa.Column("rank", sa.BigInteger(), nullable=True))'
INDEX_BUILT_CONCURRENTLY = """
with op.get_context().autocommit_block():
    op.create_index(
        "ix_todos_title", "todos", ["title"], postgresql_concurrently=True, if_not_exists=True
    )
"""


def test_the_shipped_migrations_have_no_locking_hazard() -> None:
    assert [str(finding) for finding in lint_migrations(alembic_config())] == []


@pytest.mark.parametrize(
    ("upgrade", "rule"),
    [
        pytest.param(NOT_NULL_WITHOUT_DEFAULT, "adding-required-field", id="not-null-no-default"),
        pytest.param(
            INDEX_WITHOUT_CONCURRENTLY,
            "require-concurrent-index-creation",
            id="index-not-concurrently",
        ),
    ],
)
def test_a_hazardous_migration_fails_the_lint_naming_it_and_the_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], upgrade: str, rule: str
) -> None:
    plant_migration(tmp_path, upgrade)
    assert main(alembic_config(planted=tmp_path)) == 1
    printed = capsys.readouterr().out
    assert f"planted_migration.py (revision planted): {rule}:" in printed
    findings = lint_migrations(alembic_config(planted=tmp_path))
    assert [(finding.migration.revision, finding.rule) for finding in findings] == [
        ("planted", rule)
    ]


@pytest.mark.parametrize(
    "upgrade",
    [
        pytest.param(NULLABLE_COLUMN, id="nullable-column"),
        pytest.param(INDEX_BUILT_CONCURRENTLY, id="index-built-concurrently"),
    ],
)
def test_the_safe_way_of_each_passes_the_lint(tmp_path: Path, upgrade: str) -> None:
    plant_migration(tmp_path, upgrade)
    assert [str(finding) for finding in lint_migrations(alembic_config(planted=tmp_path))] == []
