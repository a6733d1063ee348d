"""The database: one engine per process, one session per request (factors IV and VI)."""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from .config import Settings

EXTENSION_KEY = "database"
# app.extensions[READINESS_CHECKS] maps a backing service's name to a function that
# raises if the service does not answer; GET /readyz runs them all.
READINESS_CHECKS = "readiness_checks"


class Database:
    """The engine and session factory of one process, attached to its app."""

    def __init__(self, settings: Settings) -> None:
        # Every wait on the database is bounded, so a request stuck on it ends with a 503
        # (errors.py) well before gunicorn's WEB_TIMEOUT would kill its worker: connecting,
        # waiting for a pooled connection, for a lock, and for a statement to finish.
        self.engine: Engine = create_engine(
            settings.database_url,
            pool_pre_ping=True,
            pool_size=settings.database_pool_size or settings.web_threads,
            max_overflow=0,
            pool_timeout=settings.database_pool_timeout,
            connect_args={
                "connect_timeout": 5,
                # Session settings sent when each connection opens: no extra round trip.
                "options": (
                    f"-c statement_timeout={settings.database_statement_timeout}s"
                    f" -c lock_timeout={settings.database_lock_timeout}s"
                ),
            },
        )
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def ping(self) -> None:
        """Raise unless the database answers a trivial query."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        """Close every pooled connection, e.g. before a process forks."""
        self.engine.dispose()


def init_app(app: Flask, settings: Settings) -> Database:
    """Create this process's engine and close each request's session when it ends."""
    database = Database(settings)
    app.extensions[EXTENSION_KEY] = database
    app.extensions.setdefault(READINESS_CHECKS, {})["database"] = database.ping
    app.teardown_appcontext(close_session)
    return database


def get_database() -> Database:
    """The Database of the current app."""
    database: Database = current_app.extensions[EXTENSION_KEY]
    return database


def get_session() -> Session:
    """The session of the current request, opened on first use."""
    if "db_session" not in g:
        g.db_session = get_database().sessions()
    session: Session = g.db_session
    return session


def close_session(_error: BaseException | None = None) -> None:
    """Give the request's connection back to the pool, rolling back anything uncommitted."""
    session: Session | None = g.pop("db_session", None)
    if session is not None:
        session.close()
