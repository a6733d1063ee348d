"""Prints the twelve-factor table after a run of the factor tests (`make factors`)."""

from __future__ import annotations

import sys
from collections import defaultdict

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


def factor_row(module_path: str) -> tuple[str, str]:
    """The factor's name and what its test file checks, from the file name and docstring."""
    stem = module_path.rsplit("/", 1)[-1].removesuffix(".py")  # test_03_config
    _, number, *words = stem.split("_")
    name = f"{ROMAN[int(number) - 1]}. {' '.join(words).capitalize()}"
    module = sys.modules.get(f"tests.factors.{stem}")
    summary = (module.__doc__ or "").strip().splitlines()[0] if module else ""
    return name, summary


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    """One row per factor: its name, what was checked, and whether it held."""
    rows = sorted(module for module in outcomes if "/factors/test_" in module)
    if not rows:
        return
    terminalreporter.section("twelve factors")
    for module in rows:
        name, summary = factor_row(module)
        verdict = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}[outcomes[module]]
        terminalreporter.write_line(f"{verdict:<5} {name:<24} {summary}")
