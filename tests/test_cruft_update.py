"""Template updates with cruft, for real: a project baked from one commit of the template takes
a later commit's changes, keeps its own, and still passes its suite.

The template as it stands in this checkout (tracked and new files, as git sees them) is
committed to a throwaway repository as commit A. A project is baked from A with
`cruft create`, committed, and edited by its owner. The template then gets commit B: a new
file and a changed line. `cruft update` brings B into the project.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from baked_project import BakedProject, describe_failure, own_tools_env
from interpreters import find_interpreter

pytestmark = pytest.mark.baked

TEMPLATE_ROOT = Path(__file__).resolve().parent.parent
TOOLS = Path(sys.executable).parent
IDENTITY = {
    "GIT_AUTHOR_NAME": "Template Tests",
    "GIT_AUTHOR_EMAIL": "tests@example.com",
    "GIT_COMMITTER_NAME": "Template Tests",
    "GIT_COMMITTER_EMAIL": "tests@example.com",
}

# Commit B of the template, and the owner's own edit of the baked project: both in the
# README, in different places, so the update has to merge rather than overwrite.
NEW_TEMPLATE_FILE = "{{cookiecutter.project_slug}}/docs/CHANGES.md"
NEW_FILE_TEXT = "# Changes to {{ cookiecutter.project_name }}\n"
TEMPLATE_LINE = ("## Layout\n", "## Layout of the project\n")
OWNER_LINE = ("A twelve-factor Flask service.\n", "Keeps the team's todo lists.\n")


def run(cwd: Path, *command: str, env: dict[str, str] | None = None) -> str:
    """Run a command; fail with what it printed if it does not succeed."""
    result = subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, **IDENTITY, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result.stdout


def cruft(cwd: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """cruft from the template's own environment."""
    return subprocess.run(
        [str(TOOLS / "cruft"), *arguments],
        cwd=cwd,
        env={**os.environ, **IDENTITY},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def commit_all(repository: Path, message: str) -> str:
    """Commit everything in a repository; the new commit's id."""
    run(repository, "git", "add", "--all")
    run(repository, "git", "commit", "--quiet", "--message", message)
    return run(repository, "git", "rev-parse", "HEAD").strip()


def replace_line(path: Path, old: str, new: str) -> None:
    """Change one line of a file, failing if the line is not there."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{path.name} should hold {old!r} once"
    path.write_text(text.replace(old, new), encoding="utf-8")


def copy_template(destination: Path) -> None:
    """The template's files as git sees them here: tracked and new ones, not ignored ones."""
    listed = run(
        TEMPLATE_ROOT, "git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"
    )
    for name in filter(None, listed.split("\0")):
        source = TEMPLATE_ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


@dataclass(frozen=True)
class RoundTrip:
    """The project after the update, and what cruft said on the way."""

    project: Path
    commit_b: str
    check_before_update: subprocess.CompletedProcess[str]
    update: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory: pytest.TempPathFactory, cookiecutter_config: Path) -> RoundTrip:
    """Bake from commit A with cruft, then update the project to commit B."""
    template = tmp_path_factory.mktemp("template-repository")
    copy_template(template)
    run(template, "git", "init", "--quiet", "--initial-branch", "main")
    commit_all(template, "A")

    output = tmp_path_factory.mktemp("baked")
    created = cruft(
        output,
        "create",
        "--no-input",
        "--config-file",
        str(cookiecutter_config),
        str(template),
    )
    assert created.returncode == 0, created.stdout + created.stderr
    (project,) = output.iterdir()
    run(project, "git", "init", "--quiet", "--initial-branch", "main")
    commit_all(project, "Baked from the template")
    replace_line(project / "README.md", *OWNER_LINE)
    commit_all(project, "Say what the service is for")

    new_file = template / NEW_TEMPLATE_FILE
    new_file.parent.mkdir(parents=True, exist_ok=True)
    new_file.write_text(NEW_FILE_TEXT, encoding="utf-8")
    replace_line(template / "{{cookiecutter.project_slug}}" / "README.md", *TEMPLATE_LINE)
    commit_b = commit_all(template, "B")

    check_before_update = cruft(project, "check")
    update = cruft(project, "update", "--skip-apply-ask", "--allow-untracked-files")
    return RoundTrip(project, commit_b, check_before_update, update)


def test_cruft_check_says_a_project_behind_its_template_is_out_of_date(
    round_trip: RoundTrip,
) -> None:
    assert round_trip.check_before_update.returncode != 0
    assert "out of date" in round_trip.check_before_update.stdout.lower()


def test_cruft_update_brings_the_new_file_and_the_changed_line_and_keeps_the_owners_edit(
    round_trip: RoundTrip,
) -> None:
    assert round_trip.update.returncode == 0, round_trip.update.stdout + round_trip.update.stderr
    project = round_trip.project
    assert (project / "docs" / "CHANGES.md").read_text(encoding="utf-8") == (
        "# Changes to My Service\n"
    )
    readme = (project / "README.md").read_text(encoding="utf-8")
    assert TEMPLATE_LINE[1] in readme
    assert TEMPLATE_LINE[0] not in readme
    assert OWNER_LINE[1] in readme
    assert OWNER_LINE[0] not in readme
    assert not list(project.rglob("*.rej")), "a change did not apply cleanly"
    recorded = json.loads((project / ".cruft.json").read_text(encoding="utf-8"))
    assert recorded["commit"] == round_trip.commit_b


def test_cruft_check_is_clean_after_the_update(round_trip: RoundTrip) -> None:
    check = cruft(round_trip.project, "check")
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_updated_project_passes_its_own_suite(
    round_trip: RoundTrip, tmp_path_factory: pytest.TempPathFactory, test_database_url: str
) -> None:
    interpreter = find_interpreter("3.12")
    if interpreter is None:
        pytest.skip("no working Python 3.12 to install the default project with")
    project = round_trip.project
    commit_all(project, "Update from the template")
    env = own_tools_env(
        mypy_cache_dir=tmp_path_factory.mktemp("mypy-cache"), database_url=test_database_url
    )
    baked = BakedProject(project, "3.12", interpreter, env)
    for arguments in (("install", f"PYTHON={interpreter}"), ("test",)):
        result = baked.make(*arguments)
        if result.returncode != 0:
            pytest.fail(describe_failure(project, arguments, result), pytrace=False)
