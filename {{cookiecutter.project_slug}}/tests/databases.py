"""PostgreSQL for the tests: databases and roles of their own, migrations, and row locks."""

from __future__ import annotations

import contextlib
import os
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Connection, create_engine, text

from .processes import PROJECT_ROOT


def count_todos(database_url: str) -> int:
    """How many todos a database holds, read with a connection of the test's own."""
    engine = create_engine(database_url)
    with engine.connect() as connection:
        total = connection.scalar(text("SELECT count(*) FROM todos"))
    engine.dispose()
    return int(total or 0)


# The zone of every test database: not UTC (half an hour off, even), as a server's may not
# be. The service must still write its times in UTC (db.py), and each test reading one shows it.
SERVER_TIME_ZONE = "America/St_Johns"


def create_database(admin_url: URL, name: str) -> None:
    """Create an empty database on the server of admin_url, in SERVER_TIME_ZONE."""
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
        connection.execute(text(f"ALTER DATABASE \"{name}\" SET TimeZone = '{SERVER_TIME_ZONE}'"))
    engine.dispose()


def rename_database(admin_url: URL, name: str, new_name: str) -> None:
    """Give a database another name, at once: a database appears whole under the new one."""
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'ALTER DATABASE "{name}" RENAME TO "{new_name}"'))
    engine.dispose()


def drop_database(admin_url: URL, name: str) -> None:
    """Drop a database, closing whatever connections are still open to it."""
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@contextlib.contextmanager
def temporary_database(admin_url: URL, purpose: str, revision: str | None = None) -> Iterator[str]:
    """A database of its own for a test, migrated to revision if given; dropped afterwards."""
    name = f"test_{purpose}_{uuid.uuid4().hex[:12]}"
    create_database(admin_url, name)
    try:
        url = admin_url.set(database=name).render_as_string(hide_password=False)
        if revision is not None:
            migrate(url, revision)
        yield url
    finally:
        drop_database(admin_url, name)


@contextlib.contextmanager
def role_with_database(admin_url: URL, purpose: str, password: str) -> Iterator[str]:
    """A role that logs in with a password, and an empty database of the same name that it owns;
    both dropped afterwards. Yields the name.

    The local server may trust every login from 127.0.0.1 (pg_hba.conf), so a wrong password
    could pass as well as the right one: what the tests need is a URL that carries one.
    """
    name = f"test_{purpose}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(
            text(f'CREATE ROLE "{name}" LOGIN PASSWORD :password'), {"password": password}
        )
        connection.execute(text(f'CREATE DATABASE "{name}" OWNER "{name}"'))
    try:
        yield name
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'DROP ROLE IF EXISTS "{name}"'))
        admin.dispose()


def alembic_config(database_url: str | None = None, *, planted: Path | None = None) -> Config:
    """Alembic's configuration for this project, pointed at one database if given, and
    finding the migrations of a test's own in the folder `planted` besides the project's."""
    config = Config(PROJECT_ROOT / "alembic.ini")
    if database_url is not None:
        config.attributes["database_url"] = database_url
    if planted is not None:
        folders = [PROJECT_ROOT / "migrations" / "versions", planted]
        config.set_main_option("version_locations", os.pathsep.join(map(str, folders)))
    return config


PLANTED_MIGRATION = '''"""Planted by a test."""

import sqlalchemy as sa
from alembic import op

revision = "planted"
down_revision = {parent!r}


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
{upgrade}


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
{downgrade}
'''


def plant_migration(folder: Path, upgrade: str, downgrade: str = "pass") -> Path:
    """Write a migration after the project's newest one into folder (a test's own), with these
    bodies of upgrade() and downgrade(); its revision is "planted"."""
    parent = ScriptDirectory.from_config(alembic_config()).get_current_head()
    body = {
        name: textwrap.indent(code.strip(), "    ")
        for name, code in (("upgrade", upgrade), ("downgrade", downgrade))
    }
    path = folder / "planted_migration.py"
    path.write_text(PLANTED_MIGRATION.format(parent=parent, **body))
    return path


def migrate(database_url: str, revision: str) -> None:
    """Upgrade (or, for 'base', downgrade) a database to a revision."""
    config = alembic_config(database_url)
    if revision == "base":
        command.downgrade(config, revision)
    else:
        command.upgrade(config, revision)


@contextlib.contextmanager
def row_locked(database_url: str, todo_id: int) -> Iterator[Connection]:
    """Hold a todo's row lock, so whatever updates it stops half-way; roll back to free it."""
    engine = create_engine(database_url)
    connection = engine.connect()
    try:
        connection.execute(text("SELECT id FROM todos WHERE id = :id FOR UPDATE"), {"id": todo_id})
        yield connection
    finally:
        connection.close()
        engine.dispose()


def waits_for_lock(database_url: str, statement: str = "") -> bool:
    """True when a statement (beginning so) in this database waits for a lock, asked in a
    fresh session, since pg_stat_activity is a snapshot for the length of a transaction.

    pg_stat_activity shows the whole server, where other test runs may be waiting too.
    """
    engine = create_engine(database_url)
    with engine.connect() as connection:
        waiting = connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE :pattern"
            ),
            {"pattern": f"{statement}%"},
        )
    engine.dispose()
    return bool(waiting)


def update_waits_for_lock(database_url: str) -> bool:
    """True when an UPDATE of todos in this database waits for a lock."""
    return waits_for_lock(database_url, "UPDATE todos")
