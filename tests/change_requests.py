"""What the CI's scheduled update jobs meet, stood in: the platform's API and its runner.

The jobs (`ci/template_update.py`, `ci/lock_update.py` in a bake) call GitHub's or GitLab's
REST API; here that is a server on 127.0.0.1 that answers as the real one does and records
every call. The runner is stood in by the variables it would set and a git with no identity.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

TOKEN = "job-token-for-tests"  # noqa: S105 (the stand-in API checks it is passed on)


@dataclass
class Call:
    """One request the stand-in received."""

    method: str
    path: str
    headers: dict[str, str]  # names in lower case, as HTTP compares them
    payload: dict[str, Any] | None


@dataclass
class StandInApi:
    """GitHub's or GitLab's REST API, as far as the job uses it: requests are kept open."""

    base_url: str = ""
    calls: list[Call] = field(default_factory=list)
    open_requests: list[dict[str, Any]] = field(default_factory=list)

    def answer(self, call: Call) -> tuple[int, object]:
        """The status and JSON body the real API would give the call."""
        self.calls.append(call)
        if call.method == "GET":
            return 200, self.open_requests
        number = len(self.open_requests) + 1 if call.method == "POST" else 1
        opened = {
            "number": number,
            "iid": number,
            "html_url": f"{self.base_url}/pull/{number}",
            "web_url": f"{self.base_url}/merge_requests/{number}",
        }
        if call.method == "POST":
            self.open_requests.append(opened)
            return 201, opened
        return 200, opened

    def writes(self) -> list[Call]:
        """The calls that opened or changed a request."""
        return [call for call in self.calls if call.method != "GET"]


@contextlib.contextmanager
def stand_in_api() -> Iterator[StandInApi]:
    """A recording stand-in of the platform's API, served on 127.0.0.1 until the block ends."""
    stand_in = StandInApi()

    class Handler(BaseHTTPRequestHandler):
        def handle_one(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            call = Call(
                self.command,
                self.path,
                {name.lower(): value for name, value in self.headers.items()},
                json.loads(body) if body else None,
            )
            status, answer = stand_in.answer(call)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self.handle_one()

        def do_POST(self) -> None:
            self.handle_one()

        def do_PATCH(self) -> None:
            self.handle_one()

        def do_PUT(self) -> None:
            self.handle_one()

        def log_message(self, format: str, *args: object) -> None:
            """Keep the test's output quiet; the calls are recorded instead."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    stand_in.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stand_in
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def runner_environment(platform: str, api: StandInApi) -> dict[str, str]:
    """The variables the platform's runner would give the job."""
    if platform == "github":
        return {
            "GITHUB_ACTIONS": "true",
            "GITHUB_API_URL": api.base_url,
            "GITHUB_REPOSITORY": "example/my-service",
            "GITHUB_REF_NAME": "main",
            "GITHUB_TOKEN": TOKEN,
        }
    return {
        "GITLAB_CI": "true",
        "CI_API_V4_URL": f"{api.base_url}/api/v4",
        "CI_PROJECT_ID": "example/my-service",
        "CI_DEFAULT_BRANCH": "main",
        "TEMPLATE_UPDATE_TOKEN": TOKEN,
    }


def run_job(
    project: Path, module: str, environment: Mapping[str, str], path: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The job's step: `python -m module` on the default branch, with the runner's variables.

    The template's own Python runs it, as it has the cruft that `make install` would provide.
    path replaces the PATH the job sees, to put stand-in programs first.
    """
    switched = subprocess.run(
        ["git", "switch", "--quiet", "main"], cwd=project, capture_output=True, text=True
    )
    assert switched.returncode == 0, switched.stderr
    # Nothing else of this machine's: the runner's git has no identity, the script brings one.
    return subprocess.run(
        [sys.executable, "-m", module],
        cwd=project,
        env={
            "PATH": path or os.environ["PATH"],
            "HOME": str(project.parent),
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
            **environment,
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
