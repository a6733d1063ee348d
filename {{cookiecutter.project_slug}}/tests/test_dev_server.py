"""`flask run --debug` from the project root: the app from .flaskenv, .env, reloader, debugger."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from .environments import SERVICE_VARIABLES, required_environment
from .http_client import http_get
from .processes import (
    PROJECT_ROOT,
    VENV_BIN,
    child_pids,
    free_port,
    stop_process,
    wait_for,
    wait_until_serving,
)

pytestmark = pytest.mark.processes

RELEASE = "flask-run-debug-test"


def dotenv_for(database_url: str) -> str:
    """A .env made as `make .env` makes it, pointed at the test's backing services."""
    values = {**required_environment(database_url), "RELEASE_ID": RELEASE}
    lines = []
    for line in (PROJECT_ROOT / ".env.example").read_text().splitlines():
        name = line.split("=", 1)[0]
        lines.append(f"{name}={values[name]}" if name in values else line)
    return "\n".join(lines) + "\n"


def shell_environment() -> dict[str, str]:
    """A developer's shell: no service settings and no Flask variables, the .venv on PATH."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in SERVICE_VARIABLES and not name.startswith(("FLASK_", "WERKZEUG_"))
    }
    environment["PATH"] = f"{VENV_BIN}{os.pathsep}{environment.get('PATH', '')}"
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


def is_running(pid: int) -> bool:
    """Whether a process with this PID still exists (and is not a zombie)."""
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return False


def test_flask_run_debug_serves_the_app_with_dotenv_reloader_and_debugger(
    tmp_path: Path, database_url: str
) -> None:
    # A copy of the project root with a .env of the test's own: a developer's .env stays as is.
    root = tmp_path / "project"
    shutil.copytree(
        PROJECT_ROOT,
        root,
        ignore=shutil.ignore_patterns(".venv", ".env", ".git", "*_cache", "__pycache__"),
    )
    (root / ".env").write_text(dotenv_for(database_url))
    port = free_port()
    output_path = tmp_path / "flask-run.log"
    with output_path.open("wb") as output:
        process = subprocess.Popen(
            [VENV_BIN / "flask", "run", "--debug", "--port", str(port)],
            cwd=root,
            env=shell_environment(),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server_pids: list[int] = []
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_until_serving(f"{base_url}/healthz", process)
        # The settings came from .env alone: the database answers and the release is its own.
        assert http_get(f"{base_url}/readyz")[0] == 200
        status, body = http_get(f"{base_url}/version")
        assert status == 200
        assert json.loads(body)["release"] == RELEASE
        # Werkzeug's debugger wraps the app: it serves its own assets.
        status, _ = http_get(f"{base_url}/?__debugger__=yes&cmd=resource&f=style.css")
        assert status == 200
        # The reloader watches the code and runs the server in a child process.
        server_pids = child_pids(process.pid)
        assert server_pids, "no server process under the reloader"
        wait_for(
            lambda: "Debugger is active" in output_path.read_text(),
            "the debugger's start-up line",
        )
        printed = output_path.read_text()
        assert "Restarting with" in printed, printed
        assert "Debug mode: on" in printed, printed
        # Stopping the reloader by its PID stops the server too.
        stop_process(process)
        wait_for(lambda: not any(is_running(pid) for pid in server_pids), "the server to stop", 10)
    finally:
        stop_process(process)
        for pid in server_pids:
            with contextlib.suppress(ProcessLookupError):
                if is_running(pid):
                    os.kill(pid, signal.SIGKILL)
