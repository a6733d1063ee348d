"""Concurrency: scale out by process type and count; processes stay in the foreground."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..environments import service_environment
from ..http_client import http_get
from ..option_tests import OPTION_TESTS
from ..processes import PROJECT_ROOT, child_pids, procfile_command, wait_for, web_process

PROCESS_TYPES = {"web", "release"}.union(*(option.process_types for option in OPTION_TESTS))


@pytest.mark.processes
def test_web_concurrency_sets_the_number_of_worker_processes(
    database_url: str, tmp_path: Path
) -> None:
    environment = service_environment(database_url, WEB_CONCURRENCY="3")
    with web_process(environment, tmp_path) as service:
        wait_for(
            lambda: len(child_pids(service.process.pid)) == 3, "three gunicorn workers", seconds=15
        )
        assert http_get(f"{service.base_url}/healthz")[0] == 200
        # The process we started is the server itself: no daemon, no pid file.
        assert service.process.poll() is None
    assert not list(PROJECT_ROOT.glob("*.pid"))


def test_the_procfile_declares_every_process_type() -> None:
    for process_type in PROCESS_TYPES:
        assert procfile_command(process_type)
    declared = {
        line.partition(":")[0]
        for line in (PROJECT_ROOT / "Procfile").read_text().splitlines()
        if line.strip()
    }
    assert declared == PROCESS_TYPES
