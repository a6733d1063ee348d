"""Port binding: the web line serves HTTP itself on $PORT, with gunicorn as a dependency."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from ..environments import service_environment
from ..http_client import http_get
from ..processes import PROJECT_ROOT, RunningService, procfile_command, web_process


def listening_addresses(service: RunningService) -> list[str]:
    """The addresses the server says, in its log, that it listens at."""
    messages = [json.loads(line)["message"] for line in service.stdout_lines()]
    return [message.split()[2] for message in messages if message.startswith("Listening at: ")]


@pytest.mark.processes
def test_the_web_line_serves_on_the_port_it_is_given(database_url: str, tmp_path: Path) -> None:
    environment = service_environment(database_url, WEB_CONCURRENCY="1")
    with web_process(environment, tmp_path) as first, web_process(environment, tmp_path) as second:
        assert first.base_url != second.base_url
        for service in (first, second):
            status, body = http_get(f"{service.base_url}/healthz")
            assert (status, json.loads(body)) == (200, {"status": "ok"})
    # On every interface: in a container, one bound to 127.0.0.1 is out of the router's reach.
    for service in (first, second):
        port = service.base_url.rsplit(":", 1)[1]
        assert listening_addresses(service) == [f"http://0.0.0.0:{port}"]


def test_the_http_server_is_a_declared_dependency_not_an_external_one() -> None:
    assert procfile_command("web")[0] == "gunicorn"
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    assert any(requirement.startswith("gunicorn") for requirement in project["dependencies"])
