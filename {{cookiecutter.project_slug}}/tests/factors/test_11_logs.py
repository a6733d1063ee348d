"""Logs as event streams: every line on stdout is one JSON event; nothing is written to files."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from ..environments import service_environment
from ..http_client import http_get, http_request
from ..processes import PROJECT_ROOT, web_process

CONTRACT_FIELDS = {"timestamp", "level", "logger", "message", "request_id", "release"}
ACCESS_FIELDS = {"method", "path", "status", "duration_ms"}
SERVICE_CODE = [*(PROJECT_ROOT / "src").rglob("*.py"), PROJECT_ROOT / "gunicorn.conf.py"]
FILE_LOGGING = {
    "FileHandler",
    "RotatingFileHandler",
    "TimedRotatingFileHandler",
    "WatchedFileHandler",
}


@pytest.mark.processes
def test_every_stdout_line_of_the_web_process_is_a_json_event(
    database_url: str, tmp_path: Path
) -> None:
    environment = service_environment(database_url, WEB_CONCURRENCY="1")
    with web_process(environment, tmp_path) as service:
        http_request("POST", f"{service.base_url}/api/todos", {"title": "logged"})
        http_get(f"{service.base_url}/api/todos", {"X-Request-ID": "factor-11"})
        http_get(f"{service.base_url}/no-such-page", {"X-Request-ID": "factor-11-last"})
        # A worker writes its access line just after the answer; stopping the service
        # before then is factor IX's concern, so wait for the last line here.
        service.access_event("factor-11-last")
    events: list[dict[str, Any]] = [json.loads(line) for line in service.stdout_lines()]
    assert service.stderr_path.read_text() == ""
    assert all(event.keys() >= CONTRACT_FIELDS for event in events)
    access = [event for event in events if event["logger"] == "gunicorn.access"]
    application = [event for event in events if event["message"] == "todo created"]
    paths = {event["path"]: event for event in access}
    assert {"/api/todos", "/no-such-page"} <= paths.keys()
    assert paths["/api/todos"]["request_id"] == "factor-11"
    assert application
    assert all(event.keys() >= ACCESS_FIELDS for event in access)
    # Access and application lines share one shape: the contract fields, the same types.
    shape = {name: type(value) for name, value in application[0].items() if name in CONTRACT_FIELDS}
    assert all(
        {name: type(event[name]) for name in shape} == shape for event in access + application
    )


def test_no_code_configures_a_log_file() -> None:
    for path in SERVICE_CODE:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Name | ast.Attribute):
                name = node.id if isinstance(node, ast.Name) else node.attr
                assert name not in FILE_LOGGING, f"{path.name}:{node.lineno} uses {name}"
            if isinstance(node, ast.keyword) and node.arg == "filename":
                raise AssertionError(f"{path.name}:{node.value.lineno} passes a log filename")


def test_gunicorn_sends_access_and_error_logs_to_stdout() -> None:
    tree = ast.parse((PROJECT_ROOT / "gunicorn.conf.py").read_text())
    settings = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    assert settings["accesslog"] == "-"
    assert settings["errorlog"] == "-"
