"""Prints the twelve-factor table after a run of the factor tests (`make factors`)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest
from _pytest.terminal import TerminalReporter

ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII")
OUTCOME_RANK = {"passed": 0, "skipped": 1, "failed": 2}

outcomes: dict[str, str] = defaultdict(lambda: "passed")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Remember the worst outcome of each factor's tests."""
    if report.when != "call" and report.outcome == "passed":
        return
    module = report.nodeid.split("::")[0]
    if OUTCOME_RANK[report.outcome] > OUTCOME_RANK[outcomes[module]]:
        outcomes[module] = report.outcome
    outcomes.setdefault(module, report.outcome)


def factor_row(root: Path, module_path: str) -> tuple[str, str]:
    """The factor's name and what its test file checks, from the file name and docstring."""
    stem = module_path.rsplit("/", 1)[-1].removesuffix(".py")  # test_03_config
    _, number, *words = stem.split("_")
    name = f"{ROMAN[int(number) - 1]}. {' '.join(words).capitalize()}"
    # Read from the file, since under pytest-xdist the modules run in other processes.
    docstring = ast.get_docstring(ast.parse((root / module_path).read_text())) or ""
    return name, docstring.splitlines()[0] if docstring else ""


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    """One row per factor: its name, what was checked, and whether it held."""
    files_of_factor: dict[str, list[str]] = defaultdict(list)
    for module in sorted(module for module in outcomes if "/factors/test_" in module):
        files_of_factor[module.rsplit("/", 1)[-1].split("_")[1]].append(module)
    if not files_of_factor:
        return
    terminalreporter.section("twelve factors")
    for files in files_of_factor.values():
        # An option may add a file to a factor (test_08_concurrency_of_tasks.py): the row is
        # named by the factor's own file, which sorts first, and holds if all of them do.
        name, summary = factor_row(terminalreporter.config.rootpath, files[0])
        outcome = max((outcomes[module] for module in files), key=OUTCOME_RANK.__getitem__)
        verdict = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}[outcome]
        terminalreporter.write_line(f"{verdict:<5} {name:<24} {summary}")
