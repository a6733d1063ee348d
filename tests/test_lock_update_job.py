"""The baked project's weekly lock update job, for real: `python -m ci.lock_update` in a bake.

The job runs the project's own `make upgrade`; only the resolver is stood in. A program named
`uv` first on the job's PATH records how it was called and, when asked to upgrade, moves Flask
to a new version in the lock it writes, as uv would when a release came out. The platform's
API is the recording stand-in of `change_requests.py`, and origin a bare repository.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from baking import run_cookiecutter
from change_requests import TOKEN, StandInApi, run_job, runner_environment, stand_in_api
from template import TEMPLATE_DIR
from template_repository import commit_all, run

pytestmark = pytest.mark.baked

MODULE = "ci.lock_update"
BRANCH = "lock-update"
NEW_FLASK = "99.0"

# The stand-in: `uv pip compile ... --output-file=LOCK [--upgrade]`, recorded in UV_CALLS.
STAND_IN_UV = f"""\
import json, os, re, sys
from pathlib import Path

arguments = sys.argv[1:]
with open(os.environ["UV_CALLS"], "a") as calls:
    calls.write(json.dumps({{"arguments": arguments,
                            "exclude_newer": os.environ.get("UV_EXCLUDE_NEWER")}}) + "\\n")
if "--upgrade" in arguments:
    (output,) = [a for a in arguments if a.startswith("--output-file=")]
    lock = Path(output.partition("=")[2])
    lock.write_text(re.sub(r"(?m)^flask==\\S+", "flask=={NEW_FLASK}", lock.read_text()))
"""


def old_flask(project: Path) -> str:
    """The Flask version the bake's lock pins."""
    for line in (project / "requirements.lock").read_text().splitlines():
        if line.startswith("flask=="):
            return line.split("==")[1].split()[0]
    raise AssertionError("requirements.lock pins no flask")


def lock_update(project: Path, api: StandInApi, bin_dir: Path) -> subprocess.CompletedProcess[str]:
    """The job, with the stand-in uv first on its PATH."""
    return run_job(
        project,
        MODULE,
        {**runner_environment("github", api), "UV_CALLS": str(bin_dir / "calls.jsonl")},
        path=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    )


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """A folder holding the stand-in uv, run by the template's own Python."""
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "uv"
    script.write_text(f"#!{sys.executable}\n{STAND_IN_UV}")
    script.chmod(0o755)
    return folder


@pytest.fixture
def project(tmp_path: Path, cookiecutter_config: Path) -> Path:
    """A GitHub-CI bake, committed on main and pushed to a bare origin."""
    output = tmp_path / "baked"
    baked_run = run_cookiecutter(
        str(TEMPLATE_DIR), "ci=github", output_dir=output, config_file=cookiecutter_config
    )
    assert baked_run.returncode == 0, baked_run.stderr
    (baked,) = output.iterdir()
    run(baked, "git", "init", "--quiet", "--initial-branch", "main")
    commit_all(baked, "Baked from the template")
    origin = tmp_path / "origin.git"
    run(tmp_path, "git", "init", "--quiet", "--bare", "--initial-branch", "main", str(origin))
    run(baked, "git", "remote", "add", "origin", str(origin))
    run(baked, "git", "push", "--quiet", "origin", "main")
    return baked


def test_the_job_upgrades_both_locks_a_week_behind_and_lists_what_moved(
    project: Path, bin_dir: Path
) -> None:
    was = old_flask(project)
    with stand_in_api() as api:
        result = lock_update(project, api, bin_dir)
    assert result.returncode == 0, result.stdout + result.stderr

    calls = [json.loads(line) for line in (bin_dir / "calls.jsonl").read_text().splitlines()]
    outputs = sorted(
        argument.partition("=")[2]
        for call in calls
        for argument in call["arguments"]
        if argument.startswith("--output-file=")
    )
    assert outputs == ["requirements-dev.lock", "requirements.lock"]
    for call in calls:
        assert "--upgrade" in call["arguments"]
        # The cut-off comes through the environment, so no lock's header records it.
        assert not any("exclude-newer" in argument for argument in call["arguments"])
        cutoff = datetime.datetime.fromisoformat(call["exclude_newer"])
        week_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=7)
        assert abs(cutoff - week_ago) < datetime.timedelta(minutes=10), call["exclude_newer"]

    origin = project.parent.parent / "origin.git"
    pushed = run(project, "git", "--git-dir", str(origin), "show", f"{BRANCH}:requirements.lock")
    assert f"flask=={NEW_FLASK}" in pushed
    (opened,) = api.writes()
    assert opened.path == "/repos/example/my-service/pulls"
    assert opened.headers["authorization"] == f"Bearer {TOKEN}"
    assert opened.payload is not None
    assert opened.payload["title"] == "Update the locked dependencies"
    assert (opened.payload["head"], opened.payload["base"]) == (BRANCH, "main")
    assert f"| flask | {was} | {NEW_FLASK} |" in opened.payload["body"]
    assert "M\trequirements-dev.lock" in opened.payload["body"]


def test_a_week_with_nothing_new_opens_nothing(project: Path, bin_dir: Path) -> None:
    was = old_flask(project)
    for lock in (project / "requirements.lock", project / "requirements-dev.lock"):
        lock.write_text(lock.read_text().replace(f"flask=={was}", f"flask=={NEW_FLASK}"))
    commit_all(project, "Already on the newest Flask")
    with stand_in_api() as api:
        result = lock_update(project, api, bin_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "up to date" in result.stdout
    assert api.calls == []
