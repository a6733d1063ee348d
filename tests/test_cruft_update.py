"""Template updates with cruft, for real: a project baked from one commit of the template takes
a later commit's changes, keeps its own, and still passes its suite.

The template as it stands in this checkout (tracked and new files, as git sees them) is
committed to a throwaway repository as commit A. A project is baked from A with
`cruft create`, committed, and edited by its owner. The template then gets commit B: a new
file and a changed line. `cruft update` brings B into the project.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from baked_project import BakedProject, describe_failure, own_tools_env
from interpreters import find_interpreter
from template_repository import (
    TEMPLATE_LINE,
    bake_with_cruft,
    commit_all,
    commit_template_change,
    cruft,
    replace_line,
    template_repository,
)

pytestmark = pytest.mark.baked

# The owner's own edit of the baked project: in the README, as commit B of the template
# (TEMPLATE_LINE), in another place, so the update has to merge rather than overwrite.
OWNER_LINE = ("A twelve-factor Flask service.\n", "Keeps the team's todo lists.\n")


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
    template = template_repository(tmp_path_factory.mktemp("template-repository"))
    project = bake_with_cruft(template, tmp_path_factory.mktemp("baked"), cookiecutter_config, {})
    replace_line(project / "README.md", *OWNER_LINE)
    commit_all(project, "Say what the service is for")

    commit_b = commit_template_change(template, "B")

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
