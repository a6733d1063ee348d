"""Real processes of the service, started as the Procfile says, waited for and stopped by PID."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .http_client import http_get

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The module the web process serves, as the Procfile names it.
WSGI_MODULE = "{{ cookiecutter.package_name }}.wsgi"
VENV_BIN = Path(sys.executable).parent


def procfile_command(process_type: str) -> list[str]:
    """The command of one Procfile line, as an argument list."""
    for line in (PROJECT_ROOT / "Procfile").read_text().splitlines():
        name, _, command_line = line.partition(":")
        if name.strip() == process_type:
            return command_line.split()
    raise LookupError(f"the Procfile has no {process_type!r} line")


def run_flask_command(
    environment: Mapping[str, str], *arguments: str
) -> subprocess.CompletedProcess[str]:
    """Run `flask --app <package>.wsgi ...` as an operator would, to completion.

    As on a platform, no .env or .flaskenv is read: only the environment given counts.
    """
    return subprocess.run(
        [str(VENV_BIN / "flask"), "--app", WSGI_MODULE, *arguments],
        cwd=PROJECT_ROOT,
        env={**environment, "FLASK_SKIP_DOTENV": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_process(
    process_type: str, environment: Mapping[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run a Procfile process to completion, as a platform would run a one-off."""
    return subprocess.run(
        procfile_command(process_type),
        cwd=PROJECT_ROOT,
        env=dict(environment),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_until_serving(url: str, process: subprocess.Popen[bytes], deadline: float = 30) -> None:
    """Poll url until it answers 200, failing early if the process dies."""
    stop_at = time.monotonic() + deadline
    while time.monotonic() < stop_at:
        if process.poll() is not None:
            raise RuntimeError(f"the process exited with {process.returncode} before serving")
        with contextlib.suppress(OSError):
            if http_get(url)[0] == 200:
                return
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer 200 within {deadline} s")


@dataclass
class RunningService:
    """A web process started by a test, and where its stdout and stderr go."""

    base_url: str
    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    def stdout_lines(self) -> list[str]:
        """What the process has printed on stdout so far, line by line."""
        return self.stdout_path.read_text(encoding="utf-8").splitlines()

    def access_event(self, request_id: str) -> dict[str, Any]:
        """The access log line of one request, as JSON. A worker writes it just after the
        answer, so while the process runs it is waited for."""

        def found() -> list[dict[str, Any]]:
            events = (json.loads(line) for line in self.stdout_lines())
            return [
                event
                for event in events
                if event["logger"] == "gunicorn.access" and event["request_id"] == request_id
            ]

        wait_for(found, f"the access line of request {request_id}", 10)
        (event,) = found()
        return event


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is pid, read from /proc."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # The parent pid is the fourth field, after the name in parentheses.
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                children.append(int(stat.parent.name))
    return children


def stop_process(process: subprocess.Popen[bytes], timeout: float = 30) -> int:
    """SIGTERM a process we started, by its PID; SIGKILL it if it lingers. Its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return int(process.returncode)


@contextlib.contextmanager
def web_process(environment: Mapping[str, str], log_dir: Path) -> Iterator[RunningService]:
    """Start the Procfile's web process on a free port, serve, then stop it by its PID."""
    port = free_port()
    stdout_path, stderr_path = log_dir / f"web-{port}.out", log_dir / f"web-{port}.err"
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            procfile_command("web"),
            cwd=PROJECT_ROOT,
            env={**environment, "PORT": str(port)},
            stdout=stdout,
            stderr=stderr,
            # Its own process group, so a test can kill the server and its workers at once.
            start_new_session=True,
        )
    service = RunningService(f"http://127.0.0.1:{port}", process, stdout_path, stderr_path)
    try:
        wait_until_serving(f"{service.base_url}/healthz", process)
        yield service
    finally:
        stop_process(process)


WAIT_SECONDS = 60


def comes_true(condition: Callable[[], object], seconds: float) -> bool:
    """Poll condition() for up to seconds; whether it came true."""
    stop_at = time.monotonic() + seconds
    while time.monotonic() < stop_at:
        if condition():
            return True
        time.sleep(0.1)
    return False


def wait_for(condition: Callable[[], object], what: str, seconds: float = WAIT_SECONDS) -> None:
    """Poll until condition() is true; fail naming what was awaited."""
    if not comes_true(condition, seconds):
        pytest.fail(f"timed out after {seconds} s waiting for {what}")
