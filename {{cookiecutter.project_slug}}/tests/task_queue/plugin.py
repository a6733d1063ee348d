"""The task queue option's part in the tests: a Redis database to use, and its variables.

conftest.py loads this module as a pytest plugin; it tells option_tests.py what the option adds
to the tests every project has (its variables' values, its process type, its route).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import redis

from ..option_tests import OptionTests, add_option_tests

# The Redis databases the tests may empty, one per pytest-xdist worker process (gw0, gw1, ...):
# 15 for gw0 and for a run without xdist, then 13 down to 1. The benchmark uses 14; 0 is where
# everyone's local data lives by default.
TEST_REDIS_DATABASES = (15, *range(13, 0, -1))
DEFAULT_TEST_REDIS_SERVER = "redis://127.0.0.1:6379"


def test_redis_server() -> str:
    """The Redis the tests may use: TEST_REDIS_URL, or the local one."""
    return os.environ.get("TEST_REDIS_URL") or DEFAULT_TEST_REDIS_SERVER


def redis_url_of_this_process() -> str:
    """This process's database on the test Redis, or the one TEST_REDIS_URL names."""
    server = test_redis_server()
    if urlsplit(server).path.strip("/"):
        return server
    number = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    return f"{server.rstrip('/')}/{TEST_REDIS_DATABASES[number]}"


def pytest_configure(config: pytest.Config) -> None:
    """Refuse, before any test process starts, a run whose processes would share a database."""
    processes = getattr(config.option, "numprocesses", None) or 0
    server = test_redis_server()
    if processes > 1 and urlsplit(server).path.strip("/"):
        raise pytest.UsageError(
            f"TEST_REDIS_URL={server} names one Redis database, which the {processes} test "
            "processes would share: leave the database out (redis://host:port) so that each "
            "gets its own, or run without -n"
        )
    if processes > len(TEST_REDIS_DATABASES):
        raise pytest.UsageError(
            f"-n {processes}: at most {len(TEST_REDIS_DATABASES)} test processes can each have "
            "a Redis database of their own"
        )


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
