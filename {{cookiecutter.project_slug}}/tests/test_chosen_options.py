"""The options chosen for this project are packages the core reaches by hook alone
(chosen_options.py): the core imports none of them, and none imports another."""

from __future__ import annotations

import ast
from pathlib import Path

from {{ cookiecutter.package_name }} import chosen_options

from .processes import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "src" / "{{ cookiecutter.package_name }}"
PACKAGE_NAME = "{{ cookiecutter.package_name }}"


def option_packages() -> set[str]:
    """The folders of the package that are options: each has an option.py."""
    return {path.parent.name for path in PACKAGE.glob("*/option.py")}


def imported(path: Path) -> set[str]:
    """The dotted names a module imports, relative imports resolved, anywhere in it."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    package = parts if path.name == "__init__.py" else parts[:-1]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            stem = ".".join([*base, *([node.module] if node.module else [])])
            names.update(f"{stem}.{alias.name}" for alias in node.names)
    return names


def option_of(name: str, options: set[str]) -> str | None:
    """The option a dotted name belongs to, if any."""
    parts = name.split(".")
    if len(parts) > 1 and parts[0] == PACKAGE_NAME and parts[1] in options:
        return parts[1]
    return None


def test_the_core_imports_no_option() -> None:
    options = option_packages()
    reaching = {
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).parts[0] not in options
        for name in imported(path)
        if option_of(name, options)
    }
    assert reaching == set()


def test_no_option_imports_another() -> None:
    options = option_packages()
    reaching = {
        f"{path.relative_to(PACKAGE)} imports {name}"
        for option in options
        for path in (PACKAGE / option).rglob("*.py")
        for name in imported(path)
        if option_of(name, options) not in (None, option)
    }
    assert reaching == set()


def test_each_option_present_is_found_and_answers_its_hooks() -> None:
    found = {module.__name__.split(".")[1] for module in chosen_options.option_modules()}
    assert found == option_packages()
    assert len(list(chosen_options.hook("init_app"))) == len(found)
    assert len(list(chosen_options.hook("SETTINGS"))) == len(found)


def test_a_hook_that_no_option_defines_is_skipped() -> None:
    assert list(chosen_options.hook("no_option_defines_this")) == []
    chosen_options.call("no_option_defines_this", "ignored")
