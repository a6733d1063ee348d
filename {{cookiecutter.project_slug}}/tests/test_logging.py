"""Logs are one JSON object per line on stdout, stamped with the request and the release."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from flask.testing import FlaskClient

from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.logging import configure_logging

from .environments import SHARED_SERVICE_RELEASE
from .http_client import http_get
from .processes import RunningService

CONTRACT_FIELDS = {"timestamp", "level", "logger", "message", "request_id", "release"}
ACCESS_FIELDS = {"method", "path", "status", "duration_ms"}


def json_lines(text: str) -> list[dict[str, Any]]:
    """Parse every line as one JSON object; fail on the first line that is not."""
    events = []
    for line in text.splitlines():
        event = json.loads(line)
        assert isinstance(event, dict), line
        events.append(event)
    return events


def test_app_lines_are_json_with_the_contract_fields(
    client: FlaskClient, capsys: pytest.CaptureFixture[str], settings: Settings
) -> None:
    configure_logging(settings)
    client.post("/api/todos", json={"title": "logged"}, headers={"X-Request-ID": "req-42"})
    captured = capsys.readouterr()
    assert captured.err == ""
    events = json_lines(captured.out)
    created = [event for event in events if event["message"] == "todo created"]
    assert len(created) == 1
    assert created[0].keys() >= CONTRACT_FIELDS
    assert created[0]["request_id"] == "req-42"
    assert created[0]["release"] == "test-release"
    assert created[0]["level"] == "INFO"
    assert created[0]["timestamp"].endswith("+00:00")


def test_lines_outside_a_request_have_a_null_request_id(
    capsys: pytest.CaptureFixture[str], settings: Settings
) -> None:
    configure_logging(settings)
    logging.getLogger("anything").warning("outside")
    (event,) = json_lines(capsys.readouterr().out)
    assert event["request_id"] is None
    assert event["message"] == "outside"


def test_console_format_is_one_readable_line(
    capsys: pytest.CaptureFixture[str], settings: Settings
) -> None:
    configure_logging(Settings(**{**settings.model_dump(), "log_format": "console"}))
    logging.getLogger("anything").info("hello")
    line = capsys.readouterr().out.strip()
    assert line.endswith("anything [None] hello")
    assert "\n" not in line


def test_configuring_twice_leaves_one_handler(settings: Settings) -> None:
    configure_logging(settings)
    configure_logging(settings)
    assert len(logging.getLogger().handlers) == 1


@pytest.mark.processes
def test_web_process_writes_only_json_lines_on_stdout_with_access_fields(
    shared_service: RunningService,
) -> None:
    http_get(f"{shared_service.base_url}/api/todos?limit=1", {"X-Request-ID": "traced-1"})
    http_get(f"{shared_service.base_url}/missing", {"X-Request-ID": "traced-2"})
    by_request = {name: shared_service.access_event(name) for name in ("traced-1", "traced-2")}
    assert shared_service.stderr_path.read_text() == ""
    events = json_lines(shared_service.stdout_path.read_text())
    assert all(event.keys() >= CONTRACT_FIELDS for event in events)
    assert {event["release"] for event in events} == {SHARED_SERVICE_RELEASE}
    assert by_request["traced-1"].keys() >= ACCESS_FIELDS
    assert by_request["traced-1"]["status"] == 200
    assert by_request["traced-1"]["method"] == "GET"
    assert by_request["traced-1"]["path"] == "/api/todos?limit=1"
    assert by_request["traced-2"]["status"] == 404
    assert isinstance(by_request["traced-2"]["duration_ms"], float)
