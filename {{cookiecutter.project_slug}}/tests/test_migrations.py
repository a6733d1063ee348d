"""The schema comes from Alembic migrations, run as the one-off release process."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Engine, MetaData, String, Table, create_engine, inspect, select, text

from .databases import alembic_config, migrate, plant_migration, waits_for_lock
from .environments import service_environment
from .processes import PROJECT_ROOT, WSGI_MODULE, procfile_command, run_process, wait_for


def table_names(database_url: str) -> set[str]:
    """The tables a database holds."""
    engine = create_engine(database_url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


# A value for the n-th sample row, by the Python type of a column.
SAMPLE_VALUES: dict[type, Callable[[int], Any]] = {
    str: lambda n: f"sample row {n}",
    int: lambda n: n,
    bool: lambda n: n % 2 == 0,
    float: lambda n: n / 4,
    Decimal: lambda n: Decimal(n) / 4,
    datetime: lambda n: datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=n),
    date: lambda n: date(2026, 1, 1) + timedelta(days=n),
}
# Rows written into every table after each migration, for the next one to carry.
SAMPLE_ROWS = 3

Rows = dict[str, tuple[list[str], list[tuple[Any, ...]]]]


def sample_value(table: Table, column: Column[Any], n: int) -> Any:
    """A value of the column's type for the n-th sample row."""
    python_type = column.type.python_type
    if python_type not in SAMPLE_VALUES:
        pytest.fail(
            f"no sample value for {table.name}.{column.name} ({column.type}): "
            "add one for its type to SAMPLE_VALUES in tests/test_migrations.py"
        )
    value = SAMPLE_VALUES[python_type](n)
    if isinstance(column.type, String) and column.type.length:
        value = value[: column.type.length]
    return value


def write_sample_rows(engine: Engine, start: int) -> None:
    """Insert sample rows into every table of the schema, filling each column that takes one."""
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.begin() as connection:
        for table in metadata.sorted_tables:
            if table.name == "alembic_version":
                continue
            writable = [
                column
                for column in table.columns
                if column.identity is None and column.computed is None
            ]
            rows = [
                {column.name: sample_value(table, column, n) for column in writable}
                for n in range(start, start + SAMPLE_ROWS)
            ]
            connection.execute(table.insert(), rows)


def rows_of_every_table(engine: Engine, like: Rows | None = None) -> Rows:
    """Every row of every table, sorted, by table: its columns and rows. Given `like`, the
    same tables and columns as there, so that columns a migration adds are left out."""
    metadata = MetaData()
    metadata.reflect(engine)
    contents: Rows = {}
    with engine.connect() as connection:
        for name, table in metadata.tables.items():
            if name == "alembic_version" or (like is not None and name not in like):
                continue
            columns = like[name][0] if like is not None else list(table.columns.keys())
            rows = connection.execute(select(*(table.c[column] for column in columns)))
            contents[name] = (columns, sorted((tuple(row) for row in rows), key=repr))
    return contents


def rows_lost_in_round_trips(database_url: str, planted: Path | None = None) -> list[str]:
    """Migrate an empty database one migration at a time, writing rows into every table after
    each; for each, upgrade, downgrade and upgrade again. What each round trip lost."""
    config = alembic_config(database_url, planted=planted)
    engine = create_engine(database_url)
    lost = []
    try:
        migrations = reversed(list(ScriptDirectory.from_config(config).walk_revisions()))
        for written, migration in enumerate(migrations):
            before = rows_of_every_table(engine)
            command.upgrade(config, migration.revision)
            command.downgrade(config, "-1")
            command.upgrade(config, migration.revision)
            after = rows_of_every_table(engine, like=before)
            if after != before:
                lost.append(f"{migration.revision}: before {before}, after {after}")
            write_sample_rows(engine, start=written * SAMPLE_ROWS)
    finally:
        engine.dispose()
    return lost


def test_every_migration_round_trips_with_rows_in_the_tables(empty_database: str) -> None:
    assert rows_lost_in_round_trips(empty_database) == []


def test_a_round_trip_that_loses_rows_is_named(empty_database: str, tmp_path: Path) -> None:
    plant_migration(
        tmp_path,
        upgrade='op.add_column("todos", sa.Column("note", sa.Text(), nullable=True))',
        downgrade='op.execute("DELETE FROM todos")\nop.drop_column("todos", "note")',
    )
    lost = rows_lost_in_round_trips(empty_database, planted=tmp_path)
    assert [problem.split(":")[0] for problem in lost] == ["planted"]


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
