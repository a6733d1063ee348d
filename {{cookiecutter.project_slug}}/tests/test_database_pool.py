"""The pool in a forked child (gunicorn's workers, a task queue's pool): connections the parent
opened stay the parent's, and a pool the parent never used is kept as it is."""

from __future__ import annotations

import weakref

from sqlalchemy.pool import QueuePool

from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.db import (
    Database,
    forget_inherited_connections,
)


def test_a_forked_child_starts_without_the_connections_its_parent_opened(
    settings: Settings,
) -> None:
    database = Database(settings)
    database.ping()  # the parent's connection, back in its pool
    inherited = database.engine.pool
    try:
        forget_inherited_connections(weakref.ref(database.engine))

        pool = database.engine.pool
        assert pool is not inherited
        assert isinstance(pool, QueuePool)
        assert (pool.checkedin(), pool.checkedout()) == (0, 0)
    finally:
        inherited.dispose()
        database.dispose()


def test_a_pool_the_parent_never_connected_through_is_kept(settings: Settings) -> None:
    database = Database(settings)
    unused = database.engine.pool

    forget_inherited_connections(weakref.ref(database.engine))

    assert database.engine.pool is unused
