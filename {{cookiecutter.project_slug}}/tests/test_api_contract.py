"""The API keeps the promises of its own OpenAPI document, checked from the outside.

schemathesis reads /openapi.json from the real web process and sends every operation generated
requests, valid and invalid: each answer must have a documented status, content type and shape,
valid input must be accepted and invalid input refused, and nothing may be a server error. It
runs as a command (its pytest plugin is off) and talks to 127.0.0.1 only: schemathesis 4 sends
no telemetry and uploads no report, and proxy variables are dropped from its environment.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .http_client import http_get
from .processes import VENV_BIN, RunningService

pytestmark = pytest.mark.processes

SCHEMATHESIS = VENV_BIN / "schemathesis"
# Enough generated requests per operation to catch a misstated response, few enough that the
# whole run takes seconds.
MAX_EXAMPLES = 20
REQUEST_TIMEOUT_SECONDS = 10
RUN_TIMEOUT_SECONDS = 120

# How this service refuses invalid input: malformed, unknown id, too large, URL too long for the
# web server, wrong content type, invalid field. And the cursor is opaque: its schema (a string)
# cannot say which strings the service issued, so a well-formed cursor may still be refused with
# 422, as the document says of that operation.
CONFIG = """\
[checks.negative_data_rejection]
expected-statuses = ["400", "404", "413", "414", "415", "422"]

[[operations]]
include-name = "GET /api/todos"
checks.positive_data_acceptance.expected-statuses = ["2xx", "422"]
"""


@dataclass
class Run:
    """What one schemathesis run printed, how it exited, and its JSON report."""

    returncode: int
    output: str
    report: dict[str, Any]


def run_schemathesis(location: str, workdir: Path, *options: str) -> Run:
    """Run `schemathesis run` with every check against location; reports stay in workdir."""
    config, report = workdir / "schemathesis.toml", workdir / "schemathesis-report.json"
    config.write_text(CONFIG)
    environment = {
        name: value for name, value in os.environ.items() if not name.lower().endswith("_proxy")
    }
    completed = subprocess.run(
        [
            str(SCHEMATHESIS),
            "--config-file",
            str(config),
            "run",
            location,
            "--checks",
            "all",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--request-timeout",
            str(REQUEST_TIMEOUT_SECONDS),
            "--report",
            "json",
            "--report-json-path",
            str(report),
            "--no-color",
            *options,
        ],
        # Its cache and example database go to the test's own directory, not the project.
        cwd=workdir,
        env=environment,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert report.is_file(), f"schemathesis wrote no report:\n{output}"
    return Run(completed.returncode, output, json.loads(report.read_text()))


def documented_operations(document: dict[str, Any]) -> set[str]:
    """Every operation of an OpenAPI document, named as schemathesis names them."""
    return {
        f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        for method in operations
    }


def test_the_api_keeps_every_promise_of_its_openapi_document(
    shared_service: RunningService, tmp_path: Path
) -> None:
    status, body = http_get(f"{shared_service.base_url}/openapi.json")
    assert status == 200
    operations = documented_operations(json.loads(body))

    run = run_schemathesis(f"{shared_service.base_url}/openapi.json", tmp_path)

    assert run.returncode == 0, run.output
    assert run.report["operations"]["tested"] == len(operations), run.output
    assert run.report["test_cases"]["generated"] > len(operations), run.output


def test_a_document_that_misstates_the_error_content_type_fails_the_run(
    shared_service: RunningService, tmp_path: Path
) -> None:
    status, body = http_get(f"{shared_service.base_url}/openapi.json")
    assert status == 200
    misstated = tmp_path / "openapi.json"
    misstated.write_bytes(body.replace(b"application/problem+json", b"application/json"))

    run = run_schemathesis(
        str(misstated),
        tmp_path,
        "--url",
        shared_service.base_url,
        "--include-name",
        "GET /api/todos/{todo_id}",
    )

    assert run.returncode == 1, run.output
    assert "Undocumented Content-Type" in {failure["title"] for failure in run.report["failures"]}
