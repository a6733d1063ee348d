"""Dev/prod parity: PostgreSQL everywhere, one major version in every file that names it."""

from __future__ import annotations

import os
import re
from pathlib import Path

from sqlalchemy import make_url

from ..conftest import DEFAULT_TEST_DATABASE_URL
from ..processes import PROJECT_ROOT

POSTGRES_VERSION = "{{ cookiecutter.postgres_version }}"
# Spelled in two parts so that this file does not trip its own search.
OTHER_DATABASE = "sq" + "lite"
SKIPPED_DIRECTORIES = {
    ".venv",
    ".git",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    "__pycache__",
}
FACTOR_PAGES = PROJECT_ROOT / "docs" / "factors"
DIFF_BLOCK = re.compile(r"^```diff\n.*?^```$", re.MULTILINE | re.DOTALL)


def project_files() -> list[Path]:
    """Every text file of the project, outside environments and caches.

    Those directories are not even walked into: .venv alone holds thousands of files.
    """
    files: list[Path] = []
    for directory, subdirectories, names in os.walk(PROJECT_ROOT):
        subdirectories[:] = [name for name in subdirectories if name not in SKIPPED_DIRECTORIES]
        files.extend(Path(directory, name) for name in names)
    return files


def searchable_text(path: Path) -> str:
    """A file's text, less the factor pages' exercise diffs, which break this on purpose."""
    text = path.read_bytes().decode(errors="replace")
    return DIFF_BLOCK.sub("", text) if path.parent == FACTOR_PAGES else text


def test_tests_run_on_postgresql(database_url: str) -> None:
    assert make_url(DEFAULT_TEST_DATABASE_URL).get_backend_name() == "postgresql"
    assert make_url(database_url).get_backend_name() == "postgresql"


def test_no_other_database_engine_is_named_anywhere() -> None:
    offenders = [
        str(path.relative_to(PROJECT_ROOT))
        for path in project_files()
        if OTHER_DATABASE in searchable_text(path).lower()
    ]
    assert offenders == []


def test_every_postgres_image_and_mention_has_the_same_major_version() -> None:
    versions: dict[str, set[str]] = {}
    for path in project_files():
        if path.suffix not in {".yml", ".yaml", ".md"} and path.name != "Dockerfile":
            continue
        content = searchable_text(path)
        found = set(re.findall(r"\bpostgres:(\d+)", content))
        found |= set(re.findall(r"\bPostgreSQL (\d+)\b", content))
        if found:
            versions[str(path.relative_to(PROJECT_ROOT))] = found
    assert "README.md" in versions
    assert {name: found for name, found in versions.items() if found != {POSTGRES_VERSION}} == {}
