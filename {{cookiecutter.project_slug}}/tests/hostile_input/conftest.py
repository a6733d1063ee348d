"""One web process for all the hostile-input modules, and the state each test starts from."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine

from ..environments import service_environment
from ..http_client import http_request
from ..processes import RunningService, child_pids, wait_for, web_process
from .raw_http import MAX_CONTENT_LENGTH, WORKERS, Baseline, is_running, todos_in


@pytest.fixture(scope="package")
def service(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    """One web process for the package, started from the Procfile and stopped by its PID."""
    environment = service_environment(
        database_url, WEB_CONCURRENCY=str(WORKERS), MAX_CONTENT_LENGTH=str(MAX_CONTENT_LENGTH)
    )
    with web_process(environment, tmp_path_factory.mktemp("hostile")) as running:
        yield running


@pytest.fixture(scope="package")
def database(database_url: str) -> Iterator[Engine]:
    """The test's own connections to the service's database, to count rows with."""
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="package")
def workers() -> set[int]:
    """The web workers' PIDs as last seen (scanning /proc for them is slow, so it is kept)."""
    return set()


@pytest.fixture
def baseline(service: RunningService, database: Engine, workers: set[int]) -> Baseline:
    """A todo to aim at, created normally, and the state a hostile request must not change."""

    def all_workers_up() -> bool:
        workers.clear()
        workers.update(pid for pid in child_pids(service.process.pid) if is_running(pid))
        return len(workers) == WORKERS

    # After a worker died (in an earlier test), wait for gunicorn to replace it.
    if len(workers) != WORKERS or not all(map(is_running, workers)):
        wait_for(all_workers_up, f"{WORKERS} web workers", 10)
    status, body = http_request("POST", f"{service.base_url}/api/todos", {"title": "target"})
    assert status == 201, body
    target = json.loads(body)
    return Baseline(todos_in(database), target, set(workers), len(service.stdout_lines()))
