"""The CI files: the GitHub workflow and the GitLab pipeline, against their schemas and jobs; and
the update bot that comes with each, Dependabot or Renovate."""

from __future__ import annotations

import json
import re
import shlex

import pytest

from .baked_files import WITH_GITHUB, WITH_GITLAB, Baked, on
from .validators import USES, Validators, require_no_zizmor_findings, zizmor


def test_ci_files_are_those_of_the_chosen_system(baked: Baked) -> None:
    github = (baked.path / ".github").exists()
    gitlab = (baked.path / ".gitlab-ci.yml").exists()
    renovate = (baked.path / "renovate.json").exists()
    assert (github, gitlab, renovate) == {
        "github": (True, False, False),
        "gitlab": (False, True, True),
        "none": (False, False, False),
    }[baked.answers["ci"]]
    # The template update job serves either system; the lock update job is GitHub's alone,
    # as Renovate keeps GitLab's locks.
    assert (baked.path / "ci" / "template_update.py").exists() == (baked.answers["ci"] != "none")
    assert (baked.path / "ci" / "lock_update.py").exists() == (baked.answers["ci"] == "github")


@on(WITH_GITHUB)
@pytest.mark.parametrize(
    ("workflow_file", "command"),
    [
        ("template-update.yml", ".venv/bin/python -m ci.template_update"),
        ("lock-update.yml", "python -m ci.lock_update"),
    ],
)
def test_the_update_workflows_run_weekly_with_the_least_they_need(
    baked: Baked, validators: Validators, workflow_file: str, command: str
) -> None:
    path = f".github/workflows/{workflow_file}"
    for schema in ("vendor.github-workflows", "custom.github-workflows-require-timeout"):
        validators.schema(schema, baked, path)
    workflow = baked.yaml(path)
    # PyYAML reads the bare key `on` as True.
    assert set(workflow[True]) == {"schedule", "workflow_dispatch"}
    assert workflow["permissions"] == {}
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"contents": "write", "pull-requests": "write"}
    checkout = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["persist-credentials"] is False
    step = next(s for s in job["steps"] if "-m ci." in s.get("run", ""))
    assert step["run"] == command
    assert step["env"] == {"GITHUB_TOKEN": "${{ github.token }}"}


@on(WITH_GITLAB)
def test_the_template_update_job_runs_on_schedules_with_its_own_token(baked: Baked) -> None:
    job = baked.yaml(".gitlab-ci.yml")["template-update"]
    assert job["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "schedule" && $TEMPLATE_UPDATE_TOKEN'}]
    assert job["script"][-1] == ".venv/bin/python -m ci.template_update"


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
def test_github_workflows_use_official_actions_pinned_to_a_commit_with_its_release(
    baked: Baked,
) -> None:
    minimum = {"actions/checkout": 4, "actions/setup-python": 5}
    workflows = sorted((baked.path / ".github" / "workflows").glob("*.y*ml"))
    uses = [found for path in workflows for found in USES.findall(path.read_text())]
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
def test_github_workflows_and_dependabot_have_no_zizmor_finding_above_low(
    baked: Baked, validators: Validators
) -> None:
    github = baked.path / ".github"
    workflows = sorted((github / "workflows").glob("*.y*ml"))
    assert len(workflows) > 1, "CI and the update jobs"
    inputs = [*workflows, *github.glob("dependabot.y*ml")]
    require_no_zizmor_findings(validators.run(zizmor(), inputs), "the baked .github files")


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


# The update bots' configurations: Dependabot's with GitHub, Renovate's with GitLab. Each holds a
# weekly round of grouped updates, holds new releases back some days, and covers what it can
# update here (the configurations' comments say what each bot cannot, and why).
COOLDOWN_DAYS = 7


@on(WITH_GITHUB)
def test_dependabot_config_matches_its_schema(baked: Baked, validators: Validators) -> None:
    validators.schema("vendor.dependabot", baked, ".github/dependabot.yml")


@on(WITH_GITHUB)
def test_dependabot_updates_actions_compose_images_and_python_ranges_weekly_grouped(
    baked: Baked,
) -> None:
    updates = baked.yaml(".github/dependabot.yml")["updates"]
    by_ecosystem = {update["package-ecosystem"]: update for update in updates}
    assert sorted(by_ecosystem) == ["docker-compose", "github-actions", "pip"]
    for ecosystem, update in by_ecosystem.items():
        assert update["directory"] == "/", ecosystem
        assert update["schedule"]["interval"] == "weekly", ecosystem
        assert update["cooldown"] == {"default-days": COOLDOWN_DAYS}, ecosystem
        groups = list(update["groups"].values())
        assert groups == [{"patterns": ["*"]}], f"{ecosystem}: one group of every update"
    assert by_ecosystem["pip"]["versioning-strategy"] == "increase-if-necessary"


@on(WITH_GITLAB)
def test_renovate_config_matches_its_schema(baked: Baked, validators: Validators) -> None:
    validators.schema("vendor.renovate", baked, "renovate.json")


@on(WITH_GITLAB)
def test_renovate_updates_locks_and_images_weekly_grouped_after_a_cooldown(baked: Baked) -> None:
    config = json.loads(baked.text("renovate.json"))
    assert sorted(config["enabledManagers"]) == [
        "docker-compose",
        "dockerfile",
        "gitlabci",
        "pip-compile",
    ]
    assert config["minimumReleaseAge"] == f"{COOLDOWN_DAYS} days"
    assert config["schedule"] == config["lockFileMaintenance"]["schedule"]
    assert config["lockFileMaintenance"]["enabled"] is True
    (pattern,) = config["pip-compile"]["managerFilePatterns"]
    lock_names = re.compile(pattern.strip("/"))
    for lock in ("requirements.lock", "requirements-dev.lock"):
        assert lock_names.search(lock), f"{pattern} leaves out {lock}"
    assert not lock_names.search("requirements.txt")
    grouped = {rule["groupName"] for rule in config["packageRules"] if "groupName" in rule}
    assert grouped == {"Python dependencies", "container images"}


# Renovate's pip-compile manager runs again the command a lock's header names. It refuses an
# option it does not know (for `uv pip compile`, the list in its pip-compile/common.ts) and one
# whose value is not joined by `=`: these are the options `make lock` writes.
RENOVATE_UV_OPTIONS = {"--universal", "--generate-hashes"}
RENOVATE_UV_OPTIONS_WITH_VALUES = {"--group", "--python-version", "--output-file"}


@on(WITH_GITLAB)
@pytest.mark.parametrize("lock", ["requirements.lock", "requirements-dev.lock"])
def test_renovate_can_run_again_the_command_in_each_lock_header(baked: Baked, lock: str) -> None:
    header = baked.text(lock).splitlines()[:2]
    assert header[0] == "# This file was autogenerated by uv via the following command:", header
    command = shlex.split(header[1].removeprefix("#"))
    assert command[:4] == ["uv", "pip", "compile", "pyproject.toml"], command
    for argument in command[4:]:
        option, equals, value = argument.partition("=")
        if equals:
            assert option in RENOVATE_UV_OPTIONS_WITH_VALUES, f"{option}: Renovate cannot read it"
            assert value, argument
        else:
            assert argument not in RENOVATE_UV_OPTIONS_WITH_VALUES, (
                f"Renovate reads {argument} only as {argument}=VALUE"
            )
            assert argument in RENOVATE_UV_OPTIONS, f"{argument}: Renovate cannot run it again"
    assert f"--output-file={lock}" in command
