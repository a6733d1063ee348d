"""Helpers for tests that run real worker processes against the real Redis."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..environments import service_environment
from ..processes import PROJECT_ROOT, procfile_command, stop_process, wait_for

ARCHIVED = "todo archived"
UNCHANGED = "todo already archived, or gone"
# How Celery's worker logs a task that reaches its time limits, and one that it retries.
SOFT_TIME_LIMIT = "Soft time limit"
HARD_TIME_LIMIT = "Hard time limit"
RETRY = "retry: Retry in"
# Celery prints this on SIGTERM with a bare write to stdout, bypassing logging.
CELERY_NOTICES = {"worker: Warm shutdown (MainProcess)"}


@dataclass
class RunningWorker:
    """A worker process started by a test, and the file its stdout goes to."""

    name: str
    process: subprocess.Popen[bytes]
    stdout_path: Path

    def events(self) -> list[dict[str, Any]]:
        """The complete JSON log lines the worker has written so far; any other line fails."""
        *complete, _unfinished = self.stdout_path.read_text().split("\n")
        return [json.loads(line) for line in complete if line and line not in CELERY_NOTICES]

    def messages(self, containing: str) -> list[str]:
        """The messages of the worker's log lines so far that contain some text."""
        return [event["message"] for event in self.events() if containing in event["message"]]

    def logged_at(self, containing: str) -> datetime:
        """When the worker first logged a message that contains some text."""
        timestamp = next(
            event["timestamp"] for event in self.events() if containing in event["message"]
        )
        return datetime.fromisoformat(timestamp)

    def archived_todo_ids(self) -> list[int]:
        """The todos this worker's archive tasks changed."""
        return [event["todo_id"] for event in self.events() if event["message"] == ARCHIVED]

    def tasks_done(self) -> int:
        """How many archive tasks this worker has finished, with or without effect."""
        return sum(event["message"] in (ARCHIVED, UNCHANGED) for event in self.events())


@contextlib.contextmanager
def worker_process(
    database_url: str, log_dir: Path, name: str, **overrides: str
) -> Iterator[RunningWorker]:
    """Start the Procfile's worker line, wait until it is ready, and stop it by its PID."""
    environment = service_environment(database_url, WORKER_CONCURRENCY="1", **overrides)
    stdout_path = log_dir / f"{name}.out"
    with stdout_path.open("wb") as stdout, (log_dir / f"{name}.err").open("wb") as stderr:
        process = subprocess.Popen(
            [*procfile_command("worker"), "--hostname", f"{name}@%h"],
            cwd=PROJECT_ROOT,
            env=environment,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    worker = RunningWorker(name, process, stdout_path)
    try:
        wait_for(
            lambda: process.poll() is not None or "ready." in stdout_path.read_text(),
            f"worker {name} to be ready",
        )
        assert process.poll() is None, stdout_path.read_text()
        yield worker
    finally:
        stop_process(process)
