"""The baked project's scheduled update job, for real: ci/template_update.py, run as CI runs it.

A project is baked with cruft from commit A of a throwaway template repository and pushed to a
bare repository standing in for its origin. The template gets new commits, and the job runs in
the project as a GitHub or GitLab runner would run it, against a stand-in of the platform's
API (`change_requests.py`).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from change_requests import TOKEN, StandInApi, run_job, runner_environment, stand_in_api
from template_repository import (
    TEMPLATE_LINE,
    bake_with_cruft,
    commit_all,
    commit_template_change,
    cruft,
    replace_line,
    run,
    template_repository,
)

# Run beside the cruft round trip, in CI's cruft job: both follow a template's new commits.
pytestmark = pytest.mark.baked

MODULE = "ci.template_update"
BRANCH = "template-update"
SECOND_TEMPLATE_LINE = ("## Tests\n", "## Tests and how to run them\n")


@dataclass(frozen=True)
class Setting:
    """A template repository, a project baked from it and the project's origin."""

    template: Path
    project: Path
    origin: Path

    def template_commit(self, message: str, change: tuple[str, str], new_file: bool) -> str:
        """Change a README line of the template (and add a file), and commit."""
        return commit_template_change(self.template, message, change, new_file)

    def origin_has(self, ref: str, path: str) -> bool:
        """Whether a branch of origin holds a file."""
        found = subprocess.run(
            ["git", "--git-dir", str(self.origin), "cat-file", "-e", f"{ref}:{path}"],
            capture_output=True,
            check=False,
        )
        return found.returncode == 0

    def merge_update_branch(self) -> None:
        """Merge the update branch into main on origin, as a reviewer would."""
        run(self.project, "git", "switch", "--quiet", "main")
        run(self.project, "git", "fetch", "--quiet", "origin", BRANCH)
        run(self.project, "git", "merge", "--quiet", "--ff-only", "FETCH_HEAD")
        run(self.project, "git", "push", "--quiet", "origin", "main")


def make_setting(root: Path, cookiecutter_config: Path) -> Setting:
    """Template at commit A, a project baked from it, pushed to a bare origin; all under root."""
    template = template_repository(root / "template")
    (root / "baked").mkdir()
    project = bake_with_cruft(template, root / "baked", cookiecutter_config, {"ci": "github"})
    origin = root / "origin.git"
    run(root, "git", "init", "--quiet", "--bare", "--initial-branch", "main", str(origin))
    run(project, "git", "remote", "add", "origin", str(origin))
    run(project, "git", "push", "--quiet", "origin", "main")
    return Setting(template, project, origin)


@pytest.fixture
def api() -> Iterator[StandInApi]:
    """A recording stand-in of the platform's API for one test."""
    with stand_in_api() as stand_in:
        yield stand_in


@pytest.fixture
def setting(tmp_path: Path, cookiecutter_config: Path) -> Setting:
    """A fresh template, project and origin for one test."""
    return make_setting(tmp_path, cookiecutter_config)


@dataclass(frozen=True)
class History:
    """A GitHub project's update job run three times as the template moves, and what it did."""

    setting: Setting
    api: StandInApi
    first: subprocess.CompletedProcess[str]
    main_before: str
    main_after_first: str
    branch_after_first: str
    check_after_first: subprocess.CompletedProcess[str]
    second: subprocess.CompletedProcess[str]
    calls_before_third: int
    branch_before_third: str
    third: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def history(
    tmp_path_factory: pytest.TempPathFactory, cookiecutter_config: Path
) -> Iterator[History]:
    """Template commit B, the job; commit C while its request is open, the job; the request
    merged and the job once more, with nothing new."""
    setting = make_setting(tmp_path_factory.mktemp("history"), cookiecutter_config)
    project = setting.project
    with stand_in_api() as api:
        environment = runner_environment("github", api)
        main_before = run(project, "git", "ls-remote", "origin", "main")
        setting.template_commit("B", TEMPLATE_LINE, new_file=True)
        first = run_job(project, MODULE, environment)
        main_after_first = run(project, "git", "ls-remote", "origin", "main")
        branch_after_first = run(project, "git", "branch", "--show-current").strip()
        check_after_first = cruft(project, "check")
        setting.template_commit("C", SECOND_TEMPLATE_LINE, new_file=False)
        second = run_job(project, MODULE, environment)
        setting.merge_update_branch()
        calls_before_third = len(api.calls)
        branch_before_third = run(project, "git", "ls-remote", "origin", BRANCH)
        third = run_job(project, MODULE, environment)
        yield History(
            setting,
            api,
            first,
            main_before,
            main_after_first,
            branch_after_first,
            check_after_first,
            second,
            calls_before_third,
            branch_before_third,
            third,
        )


def test_the_job_pushes_the_templates_change_and_opens_one_pull_request(
    history: History,
) -> None:
    assert history.first.returncode == 0, history.first.stdout + history.first.stderr
    assert history.main_after_first == history.main_before, "the job never pushes to main"
    opened = history.api.writes()[0]
    assert (opened.method, opened.path) == ("POST", "/repos/example/my-service/pulls")
    assert opened.headers["authorization"] == f"Bearer {TOKEN}"
    assert opened.payload is not None
    assert (opened.payload["head"], opened.payload["base"]) == (BRANCH, "main")
    assert "A\tdocs/CHANGES.md" in opened.payload["body"]
    assert "M\tREADME.md" in opened.payload["body"]
    assert "Conflicts" not in opened.payload["body"]


def test_cruft_check_is_clean_on_the_update_branch(history: History) -> None:
    assert history.branch_after_first == BRANCH
    check = history.check_after_first
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_new_template_commit_refreshes_the_open_request_instead_of_opening_another(
    history: History,
) -> None:
    assert history.second.returncode == 0, history.second.stdout + history.second.stderr
    assert [call.method for call in history.api.writes()] == ["POST", "PATCH"]
    assert history.api.writes()[1].path == "/repos/example/my-service/pulls/1"
    setting = history.setting
    origin = ("git", "--git-dir", str(setting.origin))
    readme = run(setting.project, *origin, "show", f"{BRANCH}:README.md")
    assert TEMPLATE_LINE[1] in readme
    assert SECOND_TEMPLATE_LINE[1] in readme
    assert setting.origin_has(BRANCH, "docs/CHANGES.md")


def test_a_run_with_nothing_new_after_the_merge_opens_nothing(history: History) -> None:
    third = history.third
    assert third.returncode == 0, third.stdout + third.stderr
    assert "up to date" in third.stdout
    assert history.api.calls[history.calls_before_third :] == []
    branch_now = run(history.setting.project, "git", "ls-remote", "origin", BRANCH)
    assert branch_now == history.branch_before_third


def test_conflicts_open_the_merge_request_list_the_files_and_fail_the_job(
    setting: Setting, api: StandInApi
) -> None:
    # The owner changed the very line the template changes next.
    replace_line(setting.project / "README.md", TEMPLATE_LINE[0], "## Where things are\n")
    commit_all(setting.project, "Our own heading")
    run(setting.project, "git", "push", "--quiet", "origin", "main")
    setting.template_commit("B", TEMPLATE_LINE, new_file=True)

    result = run_job(setting.project, MODULE, runner_environment("gitlab", api))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "README.md" in result.stderr
    (opened,) = api.writes()
    assert opened.path == "/api/v4/projects/example%2Fmy-service/merge_requests"
    assert opened.headers["private-token"] == TOKEN
    assert opened.payload is not None
    assert opened.payload["source_branch"] == BRANCH
    assert "Conflicts" in opened.payload["description"]
    assert "- `README.md`" in opened.payload["description"]
    origin = ("git", "--git-dir", str(setting.origin))
    readme = run(setting.project, *origin, "show", f"{BRANCH}:README.md")
    assert "<<<<<<<" in readme, "the conflict is committed for the reviewer to resolve"

    again = run_job(setting.project, MODULE, runner_environment("gitlab", api))
    assert again.returncode == 1, again.stdout + again.stderr
    assert len(api.writes()) == 1, "the open request already holds the same changes"


def test_a_project_without_cruft_json_is_told_how_to_link_it(
    setting: Setting, api: StandInApi
) -> None:
    run(setting.project, "git", "rm", "--quiet", ".cruft.json")
    commit_all(setting.project, "Forget the template")
    result = run_job(setting.project, MODULE, runner_environment("github", api))
    assert result.returncode == 2
    assert "cruft link" in result.stderr
    assert api.calls == []
