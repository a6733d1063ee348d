"""The template's README keeps its promises: the options it lists and the files it tours."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from harness import COOKIECUTTER_JSON, TEMPLATE_DIR, answers

README = (TEMPLATE_DIR / "README.md").read_text(encoding="utf-8")
QUESTIONS = [name for name in COOKIECUTTER_JSON if not name.startswith("_")]


def _fenced_blocks(text: str) -> list[list[str]]:
    """The lines of every fenced code block."""
    return [block.splitlines() for block in re.findall(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S)]


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
