"""The database: one engine per process, one session per request (factors IV and VI)."""

from __future__ import annotations

import functools
import os
import weakref
from typing import Any

import psycopg2
from flask import Flask, current_app, g, has_request_context, request
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

from .config import Settings

EXTENSION_KEY = "database"
# app.extensions[READINESS_CHECKS] maps a backing service's name to a function that
# raises if the service does not answer; GET /readyz runs them all.
READINESS_CHECKS = "readiness_checks"
# Requests that only read: their statements run in autocommit (see get_connection).
READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def refuse_dead_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Keep the pool from handing out a connection the server has closed.

    An idle connection has nothing to read unless the server has spoken: when PostgreSQL
    restarts or ends a backend, it sends a last error and closes the socket. So a pooled
    connection is checked without a round trip (SQLAlchemy's pool_pre_ping sends a query
    each time): psycopg2's poll() reads whatever has arrived, without waiting. The first
    reads the parting error, if one came (libpq keeps it as a notice); the second then meets
    the closed socket and raises. The pool drops such a connection and connects afresh, and
    the request never sees the outage. (A select() on the socket would tell as much, but
    under the web worker's gevent it goes through the event loop: ten times the cost.)
    """
    try:
        dbapi_connection.poll()
        dbapi_connection.poll()
    except psycopg2.Error as error:
        raise DisconnectionError(f"the server closed the connection: {error}") from error


# A read is one statement: sent in autocommit, it is one round trip, where a transaction
# adds BEGIN and ROLLBACK. psycopg2's autocommit is a flag of the client, switched without a
# word to the server as long as the isolation level is the server's default; SQLAlchemy's
# isolation_level="AUTOCOMMIT" would instead send a SET on every checkin.
def start_autocommit(connection: Connection) -> None:
    """Send this connection's statements without a transaction until it goes back to the pool."""
    connection.connection.driver_connection.autocommit = True  # type: ignore[union-attr]


def end_autocommit(dbapi_connection: Any, _record: Any) -> None:
    """A connection comes back to the pool as it left it: transactional."""
    if dbapi_connection is not None:
        dbapi_connection.autocommit = False


def forget_inherited_connections(engine_ref: weakref.ref[Engine]) -> None:
    """In a forked child (gunicorn's workers after preload, a task queue's pool), start an empty
    pool: connections opened by the parent belong to the parent and stay open for it.

    A pool the parent never connected through (gunicorn's master never does) is kept: it has
    nothing to forget, and a new one would copy into each worker a MiB of shared pages.
    """
    engine = engine_ref()
    if engine is None:
        return
    pool = engine.pool
    if isinstance(pool, QueuePool) and pool.checkedin() == pool.checkedout() == 0:
        return
    engine.dispose(close=False)


class Database:
    """The engine and session factory of one process, attached to its app."""

    def __init__(self, settings: Settings) -> None:
        # Every wait on the database is bounded, so a request stuck on it ends with a 503
        # (errors.py) well before gunicorn's WEB_TIMEOUT would kill its worker: connecting,
        # waiting for a pooled connection, for a lock, and for a statement to finish.
        self.engine: Engine = create_engine(
            settings.database_url,
            pool_size=settings.database_pool_size,
            max_overflow=0,
            pool_timeout=settings.database_pool_timeout,
            connect_args={
                "connect_timeout": 5,
                # Session settings sent when each connection opens: no extra round trip.
                # Times come back in UTC, as the API writes them, whatever the server's zone.
                "options": (
                    "-c TimeZone=UTC"
                    f" -c statement_timeout={settings.database_statement_timeout}s"
                    f" -c lock_timeout={settings.database_lock_timeout}s"
                ),
            },
        )
        event.listen(self.engine, "checkout", refuse_dead_connection)
        event.listen(self.engine, "checkin", end_autocommit)
        # Weakly held: an engine that is gone (a test's app) needs no care after a fork.
        os.register_at_fork(
            after_in_child=functools.partial(forget_inherited_connections, weakref.ref(self.engine))
        )
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def ping(self) -> None:
        """Raise unless the database answers a trivial query."""
        with self.engine.connect() as connection:
            start_autocommit(connection)
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        """Close every pooled connection, e.g. before a process forks."""
        self.engine.dispose()


def init_app(app: Flask, settings: Settings) -> Database:
    """Create this process's engine; give each request's connection back when it ends."""
    database = Database(settings)
    app.extensions[EXTENSION_KEY] = database
    app.extensions.setdefault(READINESS_CHECKS, {})["database"] = database.ping
    app.teardown_appcontext(close_request_database)
    return database


def get_database() -> Database:
    """The Database of the current app."""
    database: Database = current_app.extensions[EXTENSION_KEY]
    return database


def reads_only() -> bool:
    """Whether the current context is a request that only reads (a task or command is not)."""
    return has_request_context() and request.method in READ_ONLY_METHODS


def get_connection() -> Connection:
    """The connection for reading rows with SQLAlchemy Core, opened on first use.

    In a GET it is the request's own, in autocommit: each statement is one round trip. Rows
    read this way skip the ORM, whose objects and session cost more than the query itself
    for a short read. Anywhere else it is the session's, inside its transaction.
    """
    if not reads_only():
        return get_session().connection()
    if "db_connection" not in g:
        g.db_connection = get_database().engine.connect()
        start_autocommit(g.db_connection)
    connection: Connection = g.db_connection
    return connection


def get_session() -> Session:
    """The ORM session of the current request (or task, or command), opened on first use.

    Writes commit it. In a GET it works on the request's autocommit connection, so that a
    request holds one pooled connection at most, whichever way it reads.
    """
    if "db_session" not in g:
        sessions = get_database().sessions
        g.db_session = sessions(bind=get_connection()) if reads_only() else sessions()
    session: Session = g.db_session
    return session


def close_request_database(_error: BaseException | None = None) -> None:
    """Give the request's connection back to the pool, rolling back anything uncommitted."""
    session: Session | None = g.pop("db_session", None)
    if session is not None:
        session.close()
    connection: Connection | None = g.pop("db_connection", None)
    if connection is not None:
        connection.close()
