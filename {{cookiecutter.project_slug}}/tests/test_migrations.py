"""The schema comes from Alembic migrations, run as the one-off release process."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text

from .databases import alembic_config, migrate, waits_for_lock
from .environments import service_environment
from .processes import PROJECT_ROOT, WSGI_MODULE, procfile_command, run_process, wait_for


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


@pytest.mark.processes
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


@pytest.mark.processes
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


@pytest.mark.processes
def test_the_release_is_not_cut_by_a_statement_timeout(empty_database: str) -> None:
    migrate(empty_database, "head")
    # PGOPTIONS stands for a server or role default of one second per statement.
    environment = service_environment(
        empty_database, DATABASE_STATEMENT_TIMEOUT="1", PGOPTIONS="-c statement_timeout=1s"
    )
    engine = create_engine(empty_database)
    with engine.connect() as blocker:
        # Another session holds a lock the release needs, for longer than that second.
        blocker.execute(text("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE"))
        release = subprocess.Popen(
            procfile_command("release"),
            cwd=PROJECT_ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # Counted from the moment it waits, not from its start, which may take long.
        wait_for(
            lambda: release.poll() is not None or waits_for_lock(empty_database),
            "the release to wait for the lock",
        )
        time.sleep(1.5)
        still_waiting = release.poll() is None
        blocker.rollback()
    _, stderr = release.communicate(timeout=60)
    engine.dispose()
    assert still_waiting, f"the release gave up while waiting: {stderr}"
    assert release.returncode == 0, stderr
