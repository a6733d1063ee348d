"""A throwaway git repository of the template, and projects baked from it with cruft.

The template as it stands in this checkout (tracked and new files, as git sees them) is
copied and committed, so a test can add commits to it and watch a project follow.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

TEMPLATE_ROOT = Path(__file__).resolve().parent.parent
TOOLS = Path(sys.executable).parent
# The change the tests make to the template: a new file, and a line of the README changed.
NEW_TEMPLATE_FILE = "{{cookiecutter.project_slug}}/docs/CHANGES.md"
NEW_FILE_TEXT = "# Changes to {{ cookiecutter.project_name }}\n"
TEMPLATE_README = "{{cookiecutter.project_slug}}/README.md"
TEMPLATE_LINE = ("## Layout\n", "## Layout of the project\n")
IDENTITY = {
    "GIT_AUTHOR_NAME": "Template Tests",
    "GIT_AUTHOR_EMAIL": "tests@example.com",
    "GIT_COMMITTER_NAME": "Template Tests",
    "GIT_COMMITTER_EMAIL": "tests@example.com",
}


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


def template_repository(destination: Path) -> Path:
    """The template committed as the first commit of a new repository on main."""
    copy_template(destination)
    run(destination, "git", "init", "--quiet", "--initial-branch", "main")
    commit_all(destination, "A")
    return destination


def bake_with_cruft(
    template: Path, output: Path, cookiecutter_config: Path, answers: Mapping[str, str]
) -> Path:
    """A project baked from the template with `cruft create`, committed on main."""
    created = cruft(
        output,
        "create",
        "--no-input",
        "--config-file",
        str(cookiecutter_config),
        "--extra-context",
        json.dumps(dict(answers)),
        str(template),
    )
    assert created.returncode == 0, created.stdout + created.stderr
    (project,) = output.iterdir()
    run(project, "git", "init", "--quiet", "--initial-branch", "main")
    commit_all(project, "Baked from the template")
    return project


def commit_template_change(
    template: Path, message: str, line: tuple[str, str] = TEMPLATE_LINE, new_file: bool = True
) -> str:
    """Change a line of the template's README (and add NEW_TEMPLATE_FILE), and commit."""
    replace_line(template / TEMPLATE_README, *line)
    if new_file:
        path = template / NEW_TEMPLATE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(NEW_FILE_TEXT, encoding="utf-8")
    return commit_all(template, message)
