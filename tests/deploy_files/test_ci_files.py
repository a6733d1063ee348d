"""The CI files: the GitHub workflow and the GitLab pipeline, against their schemas and jobs."""

from __future__ import annotations

import re

from .baked_files import WITH_GITHUB, WITH_GITLAB, Baked, on
from .validators import USES, Validators, require_no_zizmor_findings, zizmor


def test_ci_files_are_those_of_the_chosen_system(baked: Baked) -> None:
    github = (baked.path / ".github").exists()
    gitlab = (baked.path / ".gitlab-ci.yml").exists()
    assert (github, gitlab) == {
        "github": (True, False),
        "gitlab": (False, True),
        "none": (False, False),
    }[baked.answers["ci"]]


@on(WITH_GITHUB)
def test_github_workflow_matches_its_schema(baked: Baked, validators: Validators) -> None:
    for schema in ("vendor.github-workflows", "custom.github-workflows-require-timeout"):
        validators.schema(schema, baked, ".github/workflows/ci.yml")


@on(WITH_GITHUB)
def test_github_workflow_lints_audits_tests_and_builds_the_image(baked: Baked) -> None:
    workflow = baked.yaml(".github/workflows/ci.yml")
    jobs = workflow["jobs"]
    runs = {name: [step.get("run", "") for step in job["steps"]] for name, job in jobs.items()}
    assert "make lint" in runs["lint"]
    assert "make audit" in runs["audit"]
    # PyYAML reads the bare key `on` as True.
    assert workflow[True]["schedule"], "the audit also runs on a schedule, for new advisories"
    assert "make test" in runs["test"]
    build = " ".join(runs["build-image"])
    assert "docker build" in build
    assert "push" not in build
    for name, job in jobs.items():
        actions = [step["uses"] for step in job["steps"] if "uses" in step]
        if "actions/setup-python" in " ".join(actions):
            setup = next(
                s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python")
            )
            assert setup["with"]["python-version"] == baked.answers["python_version"]
            assert any(re.search(r"pip install \"uv[>=<,.\d]*\"", run) for run in runs[name])


@on(WITH_GITHUB)
def test_github_workflow_uses_official_actions_pinned_to_a_commit_with_its_release(
    baked: Baked,
) -> None:
    minimum = {"actions/checkout": 4, "actions/setup-python": 5}
    uses = USES.findall(baked.text(".github/workflows/ci.yml"))
    assert uses
    for action, ref, comment in uses:
        assert action in minimum, f"{action}: only the official actions"
        assert re.fullmatch(r"[0-9a-f]{40}", ref), f"{action}@{ref}: pin a full commit SHA"
        release = re.fullmatch(r" # v(\d+)\.\d+\.\d+", comment)
        assert release, f"{action}@{ref}: name its release in a comment, e.g. # v5.1.0"
        assert int(release[1]) >= minimum[action], f"{action} {comment}"


@on(WITH_GITHUB)
def test_github_workflow_jobs_may_only_read_the_code_and_keep_no_token(baked: Baked) -> None:
    workflow = baked.yaml(".github/workflows/ci.yml")
    assert workflow["permissions"] == {}, "nothing by default: each job asks for its own"
    for name, job in workflow["jobs"].items():
        assert job["permissions"] == {"contents": "read"}, name
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False, (
                    f"{name} pushes nothing"
                )


@on(WITH_GITHUB)
def test_github_workflows_have_no_zizmor_finding_above_low(
    baked: Baked, validators: Validators
) -> None:
    workflows = sorted((baked.path / ".github" / "workflows").glob("*.y*ml"))
    assert workflows
    require_no_zizmor_findings(validators.run(zizmor(), workflows), "the baked workflows")


@on(WITH_GITHUB)
def test_github_workflow_tests_against_the_chosen_services(baked: Baked) -> None:
    test = baked.yaml(".github/workflows/ci.yml")["jobs"]["test"]
    images = {name: service["image"] for name, service in test["services"].items()}
    postgres = f"postgres:{baked.answers['postgres_version']}"
    expected = {"db": postgres, **({"redis": "redis:8"} if baked.celery else {})}
    assert images == expected
    assert test["services"]["db"]["ports"] == ["5432:5432"]
    assert test["env"]["TEST_DATABASE_URL"] == "postgresql://postgres@127.0.0.1:5432/postgres"
    if baked.celery:
        assert test["services"]["redis"]["ports"] == ["6379:6379"]
        assert "redis-cli ping" in test["services"]["redis"]["options"]


@on(WITH_GITLAB)
def test_gitlab_ci_matches_its_schema_and_runs_the_same_jobs(
    baked: Baked, validators: Validators
) -> None:
    validators.schema("vendor.gitlab-ci", baked, ".gitlab-ci.yml")
    pipeline = baked.yaml(".gitlab-ci.yml")
    assert pipeline["stages"] == ["check", "build"]
    python = pipeline[".python"]
    assert python["image"] == f"python:{baked.answers['python_version']}"
    assert any(re.search(r"pip install \"uv[>=<,.\d]*\"", line) for line in python["before_script"])
    assert pipeline["lint"]["extends"] == pipeline["test"]["extends"] == ".python"
    assert pipeline["lint"]["script"] == ["make lint"]
    assert pipeline["audit"]["extends"] == ".python"
    assert pipeline["audit"]["script"] == ["make audit"]
    assert pipeline["test"]["script"] == ["make test"]
    build = " ".join(pipeline["build-image"]["script"])
    assert "docker build" in build
    assert "push" not in build
    services = {s["alias"]: s["name"] for s in pipeline["test"]["services"]}
    postgres = f"postgres:{baked.answers['postgres_version']}"
    assert services == {"db": postgres, **({"redis": "redis:8"} if baked.celery else {})}
    variables = pipeline["test"]["variables"]
    assert variables["TEST_DATABASE_URL"] == "postgresql://postgres@db:5432/postgres"
    if baked.celery:
        # No database number: each parallel test process then takes a database of its own.
        assert variables["TEST_REDIS_URL"] == "redis://redis:6379"
