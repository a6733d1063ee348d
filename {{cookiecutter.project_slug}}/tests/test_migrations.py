"""The schema comes from Alembic migrations, run as the one-off release process."""

from __future__ import annotations

import subprocess
import sys

from alembic import command
from sqlalchemy import create_engine, inspect

from .support import (
    PROJECT_ROOT,
    WSGI_MODULE,
    alembic_config,
    migrate,
    run_process,
    service_environment,
)


def table_names(database_url: str) -> set[str]:
    """The tables a database holds."""
    engine = create_engine(database_url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_downgrade_and_upgrade_again(empty_database: str) -> None:
    migrate(empty_database, "head")
    assert table_names(empty_database) == {"alembic_version", "todos"}
    migrate(empty_database, "base")
    assert table_names(empty_database) == {"alembic_version"}
    migrate(empty_database, "head")
    assert "todos" in table_names(empty_database)


def test_models_and_migrations_agree(database_url: str) -> None:
    command.check(alembic_config(database_url))


def test_release_process_migrates_an_empty_database_and_is_idempotent(
    empty_database: str,
) -> None:
    environment = service_environment(empty_database)
    first = run_process("release", environment)
    assert first.returncode == 0, first.stderr
    assert "todos" in table_names(empty_database)
    second = run_process("release", environment)
    assert second.returncode == 0, second.stderr
    assert "Running upgrade" not in second.stdout


def test_web_process_never_imports_alembic(database_url: str) -> None:
    program = f"import sys; import {WSGI_MODULE}; print('alembic' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", program],
        cwd=PROJECT_ROOT,
        env=service_environment(database_url),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip().splitlines()[-1] == "False"
