"""Every supported answer bakes into a project with no template syntax left and valid files."""

from __future__ import annotations

import datetime
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from baking import text_files
from template import CHOICE_QUESTIONS, TEMPLATE_DIR, choices

QUOTED_NAME = "O'Brien's \"Quoted\" Service"

VARIANTS = [
    pytest.param({}, id="default"),
    pytest.param({"project_name": "Café Zürich Ñandú"}, id="non-ascii-name"),
    pytest.param(
        {"project_name": QUOTED_NAME, "author_name": "Renée O'Connor"},
        id="quotes-and-apostrophes",
    ),
    pytest.param(
        {"description": r"Stores C:\todo\lists: one per user \ fast"},
        id="backslash-and-colon-description",
    ),
    *(
        pytest.param({question: value}, id=f"{question}-{value}")
        for question in CHOICE_QUESTIONS
        for value in choices(question)
    ),
]

# A phrase only the chosen license's text contains.
LICENSE_MARKERS = {
    "MIT": "Permission is hereby granted, free of charge",
    "Apache-2.0": "Apache License\n                           Version 2.0, January 2004",
    "BSD-3-Clause": "Neither the name of the copyright holder nor the names of its",
    "Proprietary": "No license, express or implied, is granted",
}

# `${{ ... }}` is GitHub Actions' own expression syntax, kept on purpose in workflows.
LEFTOVER = re.compile(r"(?<!\$)\{\{|\{%|cookiecutter\.")


class Bake:
    """One baked project and the answers it was baked from."""

    def __init__(self, path: Path, answers: dict[str, Any]) -> None:
        self.path = path
        self.answers = answers

    @property
    def pyproject(self) -> dict[str, Any]:
        """The parsed pyproject.toml."""
        return tomllib.loads((self.path / "pyproject.toml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module", params=VARIANTS)
def bake(request: pytest.FixtureRequest, cookies_session: Any) -> Bake:
    """Bake the template once per variant; fail with cookiecutter's own error if it breaks."""
    result = cookies_session.bake(extra_context=request.param, template=str(TEMPLATE_DIR))
    if result.exception is not None:
        pytest.fail(f"baking {request.param} failed: {result.exception!r}")
    return Bake(result.project_path, result.context)


def test_bake_writes_the_project_directory(bake: Bake) -> None:
    assert bake.path.name == bake.answers["project_slug"]
    assert (bake.path / "pyproject.toml").is_file()
    assert (bake.path / "src" / bake.answers["package_name"] / "__init__.py").is_file()


def test_no_template_syntax_is_left(bake: Bake) -> None:
    leftovers = [
        f"{path.relative_to(bake.path)}:{number}: {line.strip()}"
        for path, text in text_files(bake.path)
        for number, line in enumerate(text.splitlines(), start=1)
        if LEFTOVER.search(line)
    ]
    leftovers += [
        f"{path.relative_to(bake.path)}: template syntax in the file name"
        for path in bake.path.rglob("*")
        if LEFTOVER.search(path.name)
    ]
    assert leftovers == []


def test_every_config_file_parses(bake: Bake) -> None:
    parsers = {
        ".toml": tomllib.loads,
        ".json": json.loads,
        ".yaml": lambda text: list(yaml.safe_load_all(text)),
        ".yml": lambda text: list(yaml.safe_load_all(text)),
    }
    checked = 0
    for path, text in text_files(bake.path):
        parse = parsers.get(path.suffix)
        if parse is None:
            continue
        try:
            parse(text)
        except (ValueError, yaml.YAMLError) as error:
            pytest.fail(f"{path.relative_to(bake.path)} does not parse: {error}")
        checked += 1
    assert checked >= 1


def test_license_is_the_chosen_one(bake: Bake) -> None:
    chosen = bake.answers["license"]
    text = (bake.path / "LICENSE").read_text(encoding="utf-8")
    assert LICENSE_MARKERS[chosen] in text
    for other, marker in LICENSE_MARKERS.items():
        if other != chosen:
            assert marker not in text
    assert bake.answers["author_name"] in text
    assert str(datetime.datetime.now(datetime.UTC).year) in text
    assert not (bake.path / "licenses").exists()


def test_package_metadata_keeps_every_answer_intact(bake: Bake) -> None:
    project = bake.pyproject["project"]
    assert project["name"] == bake.answers["project_slug"]
    assert project["description"] == bake.answers["description"]
    assert project["authors"] == [
        {"name": bake.answers["author_name"], "email": bake.answers["author_email"]}
    ]


def test_requires_python_matches_the_chosen_version(bake: Bake) -> None:
    requires_python = bake.pyproject["project"]["requires-python"]
    lower_bound = re.search(r">=\s*(\d+\.\d+)", requires_python)
    assert lower_bound is not None, requires_python
    assert lower_bound.group(1) == bake.answers["python_version"]


def test_readme_names_the_project(bake: Bake) -> None:
    readme = (bake.path / "README.md").read_text(encoding="utf-8")
    assert bake.answers["project_name"] in readme


def test_each_factor_has_a_page_named_after_its_test_and_the_index_links_it(bake: Bake) -> None:
    """tests/factors/test_NN_<name>.py goes with docs/factors/NN-<name>.md (hyphens)."""
    tests = sorted((bake.path / "tests" / "factors").glob("test_[0-9][0-9]_*.py"))
    # An option may add a file to a factor (test_08_concurrency_of_tasks.py): the factor's
    # own file sorts first and names the page.
    own_test = {}
    for test in tests:
        own_test.setdefault(test.name[5:7], test)
    expected = [
        test.stem.removeprefix("test_").replace("_", "-") + ".md" for test in own_test.values()
    ]
    # Beside them, pages that are not a factor's (schema-changes.md) are named without a number.
    guide = sorted(page.name for page in (bake.path / "docs" / "factors").glob("*.md"))
    pages = [page for page in guide if re.match(r"\d\d-", page)]
    assert len(expected) == 12
    assert pages == expected
    index = (bake.path / "docs" / "twelve-factors.md").read_text(encoding="utf-8")
    assert [page for page in guide if f"](factors/{page})" not in index] == []
