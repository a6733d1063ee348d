"""One codebase in git: a fresh clone installs and passes its tests; the template is recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from ..environments import service_environment
from ..processes import PROJECT_ROOT


def git(*arguments: str, cwd: Path) -> str:
    """Run git with a fixed identity, so the test needs no git configuration."""
    environment = {
        **os.environ,
        "GIT_AUTHOR_NAME": "factor test",
        "GIT_AUTHOR_EMAIL": "factor-test@example.com",
        "GIT_COMMITTER_NAME": "factor test",
        "GIT_COMMITTER_EMAIL": "factor-test@example.com",
    }
    result = subprocess.run(
        ["git", *arguments], cwd=cwd, env=environment, capture_output=True, text=True, check=True
    )
    return result.stdout


@pytest.mark.processes
def test_a_clone_of_the_committed_project_installs_and_passes_its_tests(
    tmp_path: Path, database_url: str
) -> None:
    repository, clone = tmp_path / "repository", tmp_path / "clone"
    git("init", "--quiet", str(repository), cwd=tmp_path)
    # Commit what git would track of the project (its .gitignore applies), then clone it.
    in_repository = ["--git-dir", str(repository / ".git"), "--work-tree", str(PROJECT_ROOT)]
    git(*in_repository, "add", "--all", cwd=PROJECT_ROOT)
    git(*in_repository, "commit", "--quiet", "-m", "initial", cwd=PROJECT_ROOT)
    git("clone", "--quiet", str(repository), str(clone), cwd=tmp_path)

    # The clone gets an environment of its own that sees the locked dependencies.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    ask_purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    answer = subprocess.run(
        [venv / "bin" / "python", "-c", ask_purelib], capture_output=True, text=True, check=True
    )
    site_packages = Path(answer.stdout.strip())
    (site_packages / "locked-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    (site_packages / "clone-source.pth").write_text(str(clone / "src") + "\n")

    environment = service_environment(database_url)
    environment.pop("PYTHONPATH", None)  # the clone alone must provide the code
    environment["PATH"] = f"{venv / 'bin'}{os.pathsep}{environment['PATH']}"
    result = subprocess.run(
        [
            venv / "bin" / "python",
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_api.py",
        ],
        cwd=clone,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_the_template_and_answers_it_was_made_from_are_recorded() -> None:
    replay_file = PROJECT_ROOT / ".cookiecutter-replay.json"
    recorded = json.loads(replay_file.read_text())["cookiecutter"]
    assert recorded["_template"]
    assert recorded["package_name"] == "{{ cookiecutter.package_name }}"
    assert recorded["python_version"] == "{{ cookiecutter.python_version }}"
