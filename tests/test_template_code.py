"""The template's code reads like hand-written code: an option's code lives in files of its
own (removed by the post-gen hook when the option is not chosen), not in {% if %} blocks."""

from __future__ import annotations

import re
from pathlib import Path

from template import HOOKS_DIR, TEMPLATE_DIR

PROJECT_TEMPLATE = TEMPLATE_DIR / "{{cookiecutter.project_slug}}"
# Code is what runs: Python, shell, and the files whose lines are commands. Configuration
# and documentation (YAML, TOML, Markdown, .env) may keep their conditional blocks.
CODE_SUFFIXES = frozenset({".py", ".sh"})
CODE_NAMES = frozenset({"Makefile", "Procfile", "Dockerfile"})
IF_BLOCK = re.compile(r"\{%-?\s*if\b")
MAX_IF_BLOCKS_IN_CODE = 5


def is_code(path: Path) -> bool:
    """Whether a template file is code: by its suffix, its name, or a #! line."""
    if path.suffix in CODE_SUFFIXES or path.name in CODE_NAMES:
        return True
    with path.open("rb") as stream:
        return stream.read(2) == b"#!"


def if_blocks_in_code() -> dict[str, int]:
    """How many {% if %} blocks each code file of the template opens, for those with any."""
    counts = {}
    for root in (PROJECT_TEMPLATE, HOOKS_DIR):
        for path in sorted(root.rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts or not is_code(path):
                continue
            count = len(IF_BLOCK.findall(path.read_text(encoding="utf-8")))
            if count:
                counts[str(path.relative_to(TEMPLATE_DIR))] = count
    return counts


def listing(counts: dict[str, int]) -> str:
    """The offenders as path:count, one per line."""
    return "\n".join(f"{path}:{count}" for path, count in counts.items())


def test_no_python_file_of_the_template_has_an_if_block() -> None:
    in_python = {path: count for path, count in if_blocks_in_code().items() if path.endswith(".py")}
    assert in_python == {}, "{% if %} in Python files:\n" + listing(in_python)


def test_the_code_files_have_at_most_five_if_blocks_in_all() -> None:
    counts = if_blocks_in_code()
    assert sum(counts.values()) <= MAX_IF_BLOCKS_IN_CODE, (
        f"{sum(counts.values())} {{% if %}} blocks in code files:\n" + listing(counts)
    )


def test_the_count_finds_both_spellings_of_an_if_block() -> None:
    text = '{% if a %}x{% endif %} {%- if b %}y{%- endif %} {% elif c %} {{ "if" }}'
    assert len(IF_BLOCK.findall(text)) == 2
