"""Where the template suite's time went, by test file, beside the record of the last full run.

The table is printed at the end of every run. `make record-times` (TEMPLATE_RECORD_TIMES=1)
rewrites tests/suite-times.json, and only after a full run with nothing failed: a routine
run never changes the tree, and a partial run never passes for the whole suite.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

RECORD = Path(__file__).with_name("suite-times.json")
RECORD_VARIABLE = "TEMPLATE_RECORD_TIMES"
# A change that adds more than this to a file is explained in the README, by review.
BUDGET_SECONDS = 30.0
README_SECTION = "How the template is tested"


@dataclass(frozen=True)
class FileTime:
    """One test file's part of a run: setup, call and teardown seconds, and its tests."""

    seconds: float
    tests: int


@dataclass(frozen=True)
class Record:
    """The times of the last full run, and where and how they were taken."""

    date: str
    cores: int | None
    source: str
    files: Mapping[str, FileTime]


def sum_by_file(phases: Iterable[tuple[str, float]]) -> dict[str, FileTime]:
    """Each file's seconds and test count, from the (node id, duration) of every phase run."""
    seconds: dict[str, float] = {}
    tests: dict[str, set[str]] = {}
    for nodeid, duration in phases:
        path = nodeid.split("::", 1)[0]
        seconds[path] = seconds.get(path, 0.0) + duration
        tests.setdefault(path, set()).add(nodeid)
    return {path: FileTime(seconds[path], len(tests[path])) for path in seconds}


def over_budget(times: Mapping[str, FileTime], record: Record | None) -> dict[str, float]:
    """The files that took more than the budget above their record (a new file, above 0 s)."""
    recorded = record.files if record else {}
    extra = {
        path: time.seconds - (recorded[path].seconds if path in recorded else 0.0)
        for path, time in times.items()
    }
    return {path: seconds for path, seconds in extra.items() if seconds > BUDGET_SECONDS}


def table(times: Mapping[str, FileTime], record: Record | None) -> list[str]:
    """The lines to print: one per file, slowest first, then the total, then any file over."""
    recorded = record.files if record else {}
    flagged = over_budget(times, record)
    total = sum(time.seconds for time in times.values())
    width = max(len("total"), *(len(path) for path in times))
    lines = [
        f"{'file':<{width}}  {'seconds':>8}  {'tests':>5}  {'share':>6}  {'record':>8}  "
        f"{'change':>8}"
    ]

    def row(name: str, seconds: float, tests: int, was: float | None, mark: str) -> str:
        share = seconds / total if total else 0.0
        before = "new" if was is None else f"{was:.1f}"
        change = "" if was is None else f"{seconds - was:+.1f}"
        return (
            f"{name:<{width}}  {seconds:8.1f}  {tests:5d}  {share:6.1%}  {before:>8}  "
            f"{change:>8}{mark}"
        ).rstrip()

    for path, time in sorted(times.items(), key=lambda item: (-item[1].seconds, item[0])):
        was = recorded[path].seconds if path in recorded else None
        lines.append(row(path, time.seconds, time.tests, was, " !" if path in flagged else ""))
    known = [recorded[path].seconds for path in times if path in recorded]
    tests_total = sum(time.tests for time in times.values())
    lines.append(row("total", total, tests_total, sum(known) if known else None, ""))
    if record:
        lines.append(f"record: {record.date}, {record.cores} cores, {record.source}")
    else:
        lines.append(f"no record yet at tests/{RECORD.name}: `make record-times` writes one")
    for path, seconds in flagged.items():
        what = "more than its record" if path in recorded else "and has no record"
        lines.append(
            f"! {path} took {seconds:.1f} s {what}: name the cost and its reason in the "
            f'README\'s "{README_SECTION}" section, then run `make record-times`'
        )
    return lines


def reasons_not_to_record(
    *,
    from_testpaths: bool,
    keyword: str,
    markexpr: str,
    deselected: int,
    collect_only: bool,
    passed: bool,
) -> list[str]:
    """Why this run's times may not replace the record; none for a full run that passed."""
    reasons = [
        (not from_testpaths, "files or folders were chosen on the command line"),
        (bool(keyword), f"-k {keyword!r} chose tests"),
        (bool(markexpr), f"-m {markexpr!r} chose tests"),
        (deselected > 0, f"{deselected} tests were deselected"),
        (collect_only, "no test ran (--collect-only)"),
        (not passed, "the run did not pass"),
    ]
    return [reason for applies, reason in reasons if applies]


def load_record(path: Path) -> Record | None:
    """The record at that path, or None when there is none yet."""
    if not path.is_file():
        return None
    document = json.loads(path.read_text(encoding="utf-8"))
    files = {
        name: FileTime(entry["seconds"], entry["tests"])
        for name, entry in document["files"].items()
    }
    return Record(document["date"], document["cores"], document["source"], files)


def record_document(times: Mapping[str, FileTime], date: str, cores: int | None) -> str:
    """The JSON text of a record of these times, stable from run to run but for the figures."""
    document = {
        "date": date,
        "cores": cores,
        "source": f"a full run of `make record-times` on {cores} cores",
        "total_seconds": round(sum(time.seconds for time in times.values()), 1),
        "files": {
            path: {"seconds": round(time.seconds, 1), "tests": time.tests}
            for path, time in sorted(times.items())
        },
    }
    return json.dumps(document, indent=2) + "\n"


class SuiteTimes:
    """Collects each phase's duration and prints the table once the run is over."""

    def __init__(self) -> None:
        self.phases: list[tuple[str, float]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.phases.append((report.nodeid, report.duration))

    def pytest_terminal_summary(
        self, terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
    ) -> None:
        times = sum_by_file(self.phases)
        if not times:
            return
        terminalreporter.write_sep("-", "time by test file")
        for line in table(times, load_record(RECORD)):
            terminalreporter.write_line(line)
        if not os.environ.get(RECORD_VARIABLE):
            return
        reasons = reasons_not_to_record(
            from_testpaths=config.args_source is pytest.Config.ArgsSource.TESTPATHS,
            keyword=config.option.keyword,
            markexpr=config.option.markexpr,
            deselected=len(terminalreporter.stats.get("deselected", [])),
            collect_only=config.option.collectonly,
            passed=exitstatus == pytest.ExitCode.OK,
        )
        if reasons:
            terminalreporter.write_line(f"tests/{RECORD.name} kept: {'; '.join(reasons)}")
            return
        today = datetime.now(UTC).date().isoformat()
        RECORD.write_text(record_document(times, today, os.cpu_count()), encoding="utf-8")
        terminalreporter.write_line(f"tests/{RECORD.name} rewritten from this run")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(SuiteTimes(), "suite-times")
