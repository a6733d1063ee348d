"""The template's own CI workflow: valid for GitHub, and running what `make test` runs here,
on every Python the template offers, against PostgreSQL and Redis."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from template import choices

WORKFLOW = Path(__file__).resolve().parent.parent / ".github" / "workflows" / "ci.yml"
SCHEMAS = ("vendor.github-workflows", "custom.github-workflows-require-timeout")


def check_schema(path: Path, schema: str) -> subprocess.CompletedProcess[str]:
    """check-jsonschema, from the template's environment, against one of its built-in schemas."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "check-jsonschema"), "--builtin-schema", schema, path],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    """The workflow, parsed (PyYAML reads the bare key `on` as True)."""
    parsed: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return parsed


@pytest.mark.parametrize("schema", SCHEMAS)
def test_the_workflow_matches_githubs_schema(schema: str, tmp_path: Path) -> None:
    result = check_schema(WORKFLOW, schema)
    assert result.returncode == 0, result.stdout + result.stderr
    # The same check refuses a job that lost its runner and its time limit.
    broken = tmp_path / "ci.yml"
    text = WORKFLOW.read_text(encoding="utf-8")
    broken.write_text(text.replace("    runs-on: ubuntu-latest\n    timeout-minutes: 10\n", ""))
    assert broken.read_text() != text
    assert check_schema(broken, schema).returncode != 0


def test_every_job_has_a_readable_name_and_a_time_limit(workflow: dict[Any, Any]) -> None:
    for job_id, job in workflow["jobs"].items():
        assert " " in job["name"], f"{job_id} needs a name a person reads"
        assert job["timeout-minutes"] <= 60


def test_the_suite_runs_on_every_python_the_template_offers(workflow: dict[Any, Any]) -> None:
    test = workflow["jobs"]["test"]
    assert sorted(test["strategy"]["matrix"]["python"]) == sorted(choices("python_version"))
    setup = next(s for s in test["steps"] if s.get("uses", "").startswith("actions/setup-python"))
    installed = setup["with"]["python-version"].splitlines()
    assert set(choices("python_version")) <= set(installed)
    assert installed[-1] == "${{ matrix.python }}", "the job's own Python is the default one"
    runs = " ".join(step.get("run", "") for step in test["steps"])
    assert "make test" in runs


def test_the_suite_has_postgres_and_redis_and_the_containers_are_required(
    workflow: dict[Any, Any],
) -> None:
    jobs = workflow["jobs"]
    images = {service["image"].split(":")[0] for service in jobs["test"]["services"].values()}
    assert images == {"postgres", "redis"}
    assert workflow["env"]["TEST_DATABASE_URL"].startswith("postgresql://postgres@127.0.0.1:5432/")
    containers = jobs["containers"]
    runs = " ".join(step.get("run", "") for step in containers["steps"])
    assert "-m containers" in runs
    assert "not containers" in " ".join(step.get("run", "") for step in jobs["test"]["steps"])
    required = [
        step.get("env", {}).get("TEMPLATE_REQUIRE_CONTAINERS") for step in containers["steps"]
    ]
    assert "1" in required, "the container job must fail, not skip, without an engine"


def test_package_downloads_are_cached(workflow: dict[Any, Any]) -> None:
    for job_id, job in workflow["jobs"].items():
        setup = next(
            s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python")
        )
        assert setup["with"]["cache"] == "pip", job_id
    cached = [
        s
        for s in workflow["jobs"]["test"]["steps"]
        if s.get("uses", "").startswith("actions/cache")
    ]
    assert cached, "no cache step"
    assert cached[0]["with"]["path"] == "~/.cache/uv"
