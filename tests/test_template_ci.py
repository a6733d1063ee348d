"""The template's own CI workflow: valid for GitHub, split into parallel jobs that together
run every template test once, on every Python the template offers, against PostgreSQL and
Redis where a baked project is installed."""

from __future__ import annotations

import itertools
import os
import re
import shlex
import subprocess
import sys
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import BAKED_VARIANTS_VARIABLE
from deploy_files.validators import USES, require_no_zizmor_findings, zizmor
from template import TEMPLATE_DIR, choices

WORKFLOW = TEMPLATE_DIR / ".github" / "workflows" / "ci.yml"
SCHEMAS = ("vendor.github-workflows", "custom.github-workflows-require-timeout")
# A job that takes longer is split: the longest must stay under 15 minutes on 2 cores.
JOB_TIME_LIMIT_MINUTES = 20


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


def collected(arguments: list[str], env: Mapping[str, str]) -> set[str]:
    """The node ids pytest collects here with these arguments and variables added."""
    # The outer run's own choices must not narrow what the job would collect.
    outer = {
        name: value
        for name, value in os.environ.items()
        if name not in {BAKED_VARIANTS_VARIABLE, "PYTEST_ADDOPTS"}
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            *arguments,
        ],
        cwd=TEMPLATE_DIR,
        env={**outer, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (arguments, env, result.stdout[-2000:], result.stderr)
    return {line for line in result.stdout.splitlines() if "::" in line}


def matrix_runs(job: dict[str, Any]) -> list[dict[str, str]]:
    """Each combination of the job's matrix (one empty one for a job without a matrix)."""
    matrix = job.get("strategy", {}).get("matrix", {})
    assert not {"include", "exclude"} & matrix.keys(), "this test reads plain matrices only"
    return [
        dict(zip(matrix, values, strict=True)) for values in itertools.product(*matrix.values())
    ]


def with_matrix(text: str, values: Mapping[str, str]) -> str:
    """The text with the matrix's values in place of its `${{ matrix.NAME }}` expressions."""
    for name, value in values.items():
        text = text.replace(f"${{{{ matrix.{name} }}}}", value)
    return text


def pytest_of(
    workflow: dict[Any, Any], job: dict[str, Any], values: Mapping[str, str]
) -> tuple[list[str], dict[str, str]] | None:
    """The pytest arguments and variables of the job's `make test`, or None if it runs none."""
    for step in job["steps"]:
        if "make test" not in step.get("run", ""):
            continue
        words = shlex.split(with_matrix(step["run"], values))
        given = [word.removeprefix("PYTEST_ARGS=") for word in words if "PYTEST_ARGS=" in word]
        variables = {**workflow.get("env", {}), **job.get("env", {}), **step.get("env", {})}
        env = {name: with_matrix(str(value), values) for name, value in variables.items()}
        known = {name: value for name, value in env.items() if "${{" not in value}
        return shlex.split(given[0]) if given else [], known
    return None


@pytest.fixture(scope="module")
def selections(workflow: dict[Any, Any]) -> dict[tuple[str, str], set[str]]:
    """The tests each job collects, keyed by job and matrix values; a job's runs that differ
    only by Python count as one, since they run the same tests on another interpreter."""
    chosen: dict[tuple[str, str], set[str]] = defaultdict(set)
    seen: dict[tuple[tuple[str, ...], frozenset[tuple[str, str]]], set[str]] = {}
    for job_id, job in workflow["jobs"].items():
        for values in matrix_runs(job):
            run = pytest_of(workflow, job, values)
            if run is None:
                continue
            arguments, env = run
            key = (tuple(arguments), frozenset(env.items()))
            if key not in seen:
                seen[key] = collected(arguments, env)
            label = ", ".join(
                f"{name}={value}" for name, value in values.items() if name != "python"
            )
            chosen[job_id, label] |= seen[key]
    return chosen


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


def test_the_workflow_has_no_zizmor_finding_above_low() -> None:
    result = subprocess.run(
        [*zizmor(), str(WORKFLOW)], capture_output=True, text=True, timeout=120, check=False
    )
    require_no_zizmor_findings(result, str(WORKFLOW.relative_to(TEMPLATE_DIR)))


def test_every_job_may_only_read_the_code_and_keeps_no_token(workflow: dict[Any, Any]) -> None:
    assert workflow["permissions"] == {}, "nothing by default: each job asks for its own"
    for job_id, job in workflow["jobs"].items():
        assert job["permissions"] == {"contents": "read"}, job_id
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False, (
                    f"{job_id} pushes nothing"
                )


def test_every_action_is_pinned_to_a_commit_with_its_release_named() -> None:
    uses = USES.findall(WORKFLOW.read_text(encoding="utf-8"))
    assert uses
    for action, ref, comment in uses:
        assert action.startswith("actions/"), f"{action}: only the official actions"
        assert re.fullmatch(r"[0-9a-f]{40}", ref), f"{action}@{ref}: pin a full commit SHA"
        assert re.fullmatch(r" # v\d+\.\d+\.\d+", comment), f"{action}@{ref}: name its release"


def test_every_job_has_a_readable_name_and_a_short_time_limit(workflow: dict[Any, Any]) -> None:
    for job_id, job in workflow["jobs"].items():
        assert " " in job["name"], f"{job_id} needs a name a person reads"
        assert job["timeout-minutes"] <= JOB_TIME_LIMIT_MINUTES, f"{job_id}: split it"


def test_every_template_test_runs_in_exactly_one_job(
    selections: dict[tuple[str, str], set[str]],
) -> None:
    jobs_of: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for job, tests in selections.items():
        for test in tests:
            jobs_of[test].append(job)
    missing = sorted(collected([], {}) - jobs_of.keys())
    assert missing == [], f"{len(missing)} tests run in no job, among them {missing[:5]}"
    twice = {test: jobs for test, jobs in jobs_of.items() if len(jobs) > 1}
    assert twice == {}, f"{len(twice)} tests run in more than one job: {list(twice.items())[:5]}"


def test_each_baked_variant_has_a_job_of_its_own(
    selections: dict[tuple[str, str], set[str]],
) -> None:
    variant_jobs = [label for job_id, label in selections if job_id == "baked"]
    assert len(variant_jobs) > 1
    assert all(label.startswith("variant=") for label in variant_jobs)


def test_the_hooks_run_on_every_python_and_the_bakes_can_use_every_python(
    workflow: dict[Any, Any],
) -> None:
    offered = choices("python_version")
    static = workflow["jobs"]["static"]
    assert sorted(static["strategy"]["matrix"]["python"]) == sorted(offered)
    baked = workflow["jobs"]["baked"]
    setup = next(s for s in baked["steps"] if s.get("uses", "").startswith("actions/setup-python"))
    installed = setup["with"]["python-version"].splitlines()
    assert sorted(installed) == sorted(offered)
    assert installed[-1] == offered[0], "the default Python is the job's own python3"


def test_every_job_that_installs_a_bake_has_postgres_and_redis(
    workflow: dict[Any, Any], selections: dict[tuple[str, str], set[str]]
) -> None:
    installing = collected(["-m", "baked or bench"], {})
    jobs = {job_id for (job_id, _), tests in selections.items() if tests & installing}
    assert {"baked", "exercises", "cruft", "bench"} <= jobs
    for job_id in jobs:
        services = workflow["jobs"][job_id].get("services", {}).values()
        assert {service["image"].split(":")[0] for service in services} == {"postgres", "redis"}
    assert workflow["env"]["TEST_DATABASE_URL"].startswith("postgresql://postgres@127.0.0.1:5432/")


def test_the_container_job_may_not_skip(workflow: dict[Any, Any]) -> None:
    containers = workflow["jobs"]["containers"]
    assert "-m containers" in " ".join(step.get("run", "") for step in containers["steps"])
    required = [
        step.get("env", {}).get("TEMPLATE_REQUIRE_CONTAINERS") for step in containers["steps"]
    ]
    assert "1" in required, "the container job must fail, not skip, without an engine"


def test_the_rolling_release_may_not_skip_for_want_of_haproxy(workflow: dict[Any, Any]) -> None:
    job = next(
        job
        for job in workflow["jobs"].values()
        if any("tests/test_rolling_release.py" in step.get("run", "") for step in job["steps"])
    )
    runs = " ".join(step.get("run", "") for step in job["steps"])
    assert "apt-get install" in runs, "install Debian's haproxy first"
    assert "haproxy" in runs, "install Debian's haproxy first"
    required = [step.get("env", {}).get("TEMPLATE_REQUIRE_HAPROXY") for step in job["steps"]]
    assert "1" in required, "the rolling release must fail, not skip, without HAProxy"


def test_package_downloads_are_cached(workflow: dict[Any, Any]) -> None:
    for job_id, job in workflow["jobs"].items():
        setup = next(
            s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python")
        )
        assert setup["with"]["cache"] == "pip", job_id
        if "services" in job:
            cached = [s for s in job["steps"] if s.get("uses", "").startswith("actions/cache")]
            assert cached, f"{job_id} installs bakes but keeps no uv cache"
            assert cached[0]["with"]["path"] == "~/.cache/uv"
