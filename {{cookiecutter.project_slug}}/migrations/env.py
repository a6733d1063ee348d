"""Alembic's entry point: migrate the database named by the service's own settings."""

from __future__ import annotations

import logging

from alembic import context
from sqlalchemy import create_engine, text

from {{ cookiecutter.package_name }}.config import settings_or_exit
from {{ cookiecutter.package_name }}.logging import configure_logging
from {{ cookiecutter.package_name }}.models import Base

# Any fixed number works; every release process of this service must use the same one.
MIGRATION_LOCK_ID = 7_270_412_001
# Printing SQL (alembic upgrade --sql) needs only the dialect: no database, no settings.
OFFLINE_URL = "postgresql+psycopg2://"

logger = logging.getLogger("migrations")


def run_migrations_offline() -> None:
    """Print the SQL instead of running it (alembic upgrade head --sql)."""
    context.configure(url=OFFLINE_URL, target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online(url: str) -> None:
    """Migrate inside one transaction, holding a lock so concurrent releases take turns."""
    engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata)
        with context.begin_transaction():
            # No time limit on any statement here, whatever the server or role sets by default:
            # a migration may rewrite a large table for minutes, and a second release waits
            # for the first one's lock. DATABASE_STATEMENT_TIMEOUT bounds requests and tasks,
            # which the web and worker processes apply to their own connections (db.py).
            connection.execute(text("SET LOCAL statement_timeout = 0"))
            # Released at commit; a second release waits here, then finds nothing to do.
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
            context.run_migrations()
    engine.dispose()


def main() -> None:
    """Run the migrations Alembic was asked for."""
    if context.is_offline_mode():
        run_migrations_offline()
        return
    url = context.config.attributes.get("database_url")
    if url is None:
        settings = settings_or_exit("alembic")
        configure_logging(settings)
        url = settings.database_url
    run_migrations_online(url)


main()
