"""The template's README keeps its promises: the options it lists and the files it tours."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from baked_project import FOREIGN_VARIABLES
from template import COOKIECUTTER_JSON, TEMPLATE_DIR, answers

README = (TEMPLATE_DIR / "README.md").read_text(encoding="utf-8")
QUESTIONS = [name for name in COOKIECUTTER_JSON if not name.startswith("_")]


def _fenced_blocks(text: str, language: str | None = None) -> list[list[str]]:
    """The lines of every fenced code block, or of those in one language."""
    blocks = re.findall(r"^```([^\n]*)\n(.*?)^```", text, re.M | re.S)
    return [body.splitlines() for info, body in blocks if language in (None, info.strip())]


# The placeholder the README's bake commands use for the template's location.
TEMPLATE_PLACEHOLDER = "path/or/url/of/this/template"


def _options_rows() -> dict[str, list[str]]:
    """The options table, keyed by the question's name."""
    rows = {}
    for line in README.splitlines():
        match = re.match(r"\| `(\w+)` \|(.*)\|$", line)
        if match:
            rows[match.group(1)] = [cell.strip() for cell in match.group(2).split("|")]
    return rows


def test_readme_has_no_todo() -> None:
    assert "TODO" not in README


def test_make_test_is_a_command_of_its_own_in_a_code_block() -> None:
    assert any(line.strip() == "make test" for block in _fenced_blocks(README) for line in block)


def test_the_first_bake_command_needs_nothing_but_python_and_pip() -> None:
    """A fresh machine has Python, pip and make: no pipx, no uv."""
    first = _fenced_blocks(README, "sh")[0]
    words = {word for line in first for word in re.findall(r"[\w.-]+", line.split("#")[0])}
    assert not words & {"pipx", "uv", "uvx"}, first
    assert any(f"-m cookiecutter {TEMPLATE_PLACEHOLDER}" in line for line in first), first


def test_the_first_bake_command_bakes_the_template_as_written(tmp_path: Path) -> None:
    """Run the Quickstart's first block, with a home of its own and the default answers."""
    home, output = tmp_path / "home", tmp_path / "output"
    home.mkdir()
    no_questions = f"--no-input --output-dir {output} {TEMPLATE_DIR}"
    script = "\n".join(["set -eu", *_fenced_blocks(README, "sh")[0]])
    script = script.replace(TEMPLATE_PLACEHOLDER, no_questions)
    # python3 is the interpreter under the tests' venv; no pipx or uv is on PATH.
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "python3").symlink_to(getattr(sys, "_base_executable", sys.executable))
    env = {
        **{name: value for name, value in os.environ.items() if name not in FOREIGN_VARIABLES},
        "HOME": str(home),
        "PATH": os.pathsep.join([str(tools), "/usr/bin", "/bin"]),
    }
    result = subprocess.run(
        ["sh", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (output / answers()["project_slug"] / "pyproject.toml").is_file()


def test_options_table_lists_every_question_and_nothing_else() -> None:
    assert sorted(_options_rows()) == sorted(QUESTIONS)


@pytest.mark.parametrize("question", QUESTIONS)
def test_options_table_shows_the_real_default(question: str) -> None:
    default_cell, choices_cell = _options_rows()[question][:2]
    value: Any = COOKIECUTTER_JSON[question]
    if isinstance(value, list):
        assert default_cell == value[0]
        assert choices_cell == ", ".join(value[1:])
    elif "{{" in value:
        assert f"`{answers()[question]}`" in default_cell
    else:
        assert default_cell == value


def _tour_paths() -> list[Path]:
    """The paths in the README's tour, rebuilt from the tree's two-space indentation."""
    tour = next(block for block in _fenced_blocks(README) if block and block[0].endswith("/"))
    paths: list[Path] = []
    parents = [tour[0].rstrip("/")]
    for line in tour[1:]:
        depth = (len(line) - len(line.lstrip())) // 2
        name = line.split()[0]
        del parents[depth:]
        paths.append(Path(*parents, name))
        if name.endswith("/"):
            parents.append(name.rstrip("/"))
    return paths


def test_every_file_in_the_tour_exists_in_a_default_bake(cookies: Any) -> None:
    result = cookies.bake(template=str(TEMPLATE_DIR))
    assert result.exception is None
    tour = _tour_paths()
    assert len(tour) >= 10
    missing = [str(path) for path in tour if not (result.project_path.parent / path).exists()]
    assert missing == [], [str(path) for path in tour]
