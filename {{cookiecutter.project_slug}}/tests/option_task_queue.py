"""The task queue option's part in the tests: a Redis database to use, and its variables.

conftest.py loads this module as a pytest plugin; it tells support.py what the option adds
to the tests every project has (its variables' values, its process type, its route).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from .support import OptionTests, add_option_tests

# The Redis databases the tests may empty, one per pytest-xdist worker process (gw0, gw1, ...):
# 15 for gw0 and for a run without xdist, then 13 down to 1. The benchmark uses 14; 0 is where
# everyone's local data lives by default.
TEST_REDIS_DATABASES = (15, *range(13, 0, -1))


def redis_url_of_this_process() -> str:
    """TEST_REDIS_URL if set (then shared by every xdist worker), else this worker's database."""
    explicit = os.environ.get("TEST_REDIS_URL")
    if explicit:
        return explicit
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    number = int(worker.removeprefix("gw"))
    if number >= len(TEST_REDIS_DATABASES):
        raise pytest.UsageError(
            f"pytest-xdist worker {worker} has no Redis database of its own: at most "
            f"{len(TEST_REDIS_DATABASES)} workers (-n) can test the task queue side by side"
        )
    return f"redis://127.0.0.1:6379/{TEST_REDIS_DATABASES[number]}"


TEST_REDIS_URL = redis_url_of_this_process()


def redis_url_with_password(encoded_password: str) -> dict[str, str]:
    """REDIS_URL logging in as Redis's default user with a password.

    A fresh Redis, whose default user has no password, accepts any; TEST_REDIS_URL must
    then carry no credentials of its own.
    """
    return {
        "REDIS_URL": TEST_REDIS_URL.replace("redis://", f"redis://default:{encoded_password}@", 1)
    }


add_option_tests(
    OptionTests(
        environment={"REDIS_URL": TEST_REDIS_URL},
        with_password=redis_url_with_password,
        process_types=frozenset({"worker"}),
        todo_routes=(b"POST /api/todos/%s/archive",),
    )
)


@pytest.fixture
def empty_task_queue() -> Iterator[None]:
    """An empty broker for the test, emptied again afterwards (no task left for the next)."""
    client = redis.Redis.from_url(TEST_REDIS_URL)
    client.flushdb()
    yield
    client.flushdb()
    client.close()
