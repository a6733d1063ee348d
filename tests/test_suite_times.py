"""The time table's arithmetic, its flags and its record, checked in-process on made-up runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from suite_times import (
    BUDGET_SECONDS,
    README_SECTION,
    RECORD,
    FileTime,
    Record,
    load_record,
    over_budget,
    reasons_not_to_record,
    record_document,
    sum_by_file,
    table,
)

BAKED = "tests/test_baked_project.py"
BAKE = "tests/test_bake.py"


def record_of(**seconds: float) -> Record:
    """A record holding these files' seconds, one test each."""
    files = {f"tests/{name}.py": FileTime(value, 1) for name, value in seconds.items()}
    return Record("2026-12-08", 2, "made up", files)


def reasons_for_a_full_run(**changes: Any) -> list[str]:
    """What keeps the record from a full run that passed, with some of its facts changed."""
    facts: dict[str, Any] = {
        "from_testpaths": True,
        "keyword": "",
        "markexpr": "",
        "deselected": 0,
        "collect_only": False,
        "passed": True,
    }
    return reasons_not_to_record(**{**facts, **changes})


def test_setup_call_and_teardown_add_up_per_file_and_each_test_counts_once() -> None:
    phases = [
        (f"{BAKED}::test_make_lint_passes[python-3.13]", 0.5),
        (f"{BAKED}::test_make_lint_passes[python-3.13]", 40.0),
        (f"{BAKED}::test_make_lint_passes[python-3.13]", 0.25),
        (f"{BAKED}::test_make_test_passes[worker-celery]", 60.0),
        (f"{BAKE}::test_no_template_syntax_is_left[defaults]", 1.5),
    ]
    assert sum_by_file(phases) == {BAKED: FileTime(100.75, 2), BAKE: FileTime(1.5, 1)}


def test_a_file_in_a_subfolder_keeps_its_path() -> None:
    phases = [("tests/deploy_files/test_dockerfile.py::test_hadolint_passes[defaults]", 2.0)]
    assert list(sum_by_file(phases)) == ["tests/deploy_files/test_dockerfile.py"]


def test_the_table_puts_the_slowest_file_first_and_ends_with_the_total() -> None:
    times = {BAKE: FileTime(10.0, 184), BAKED: FileTime(30.0, 31)}
    lines = table(times, None)
    assert lines[0].split() == ["file", "seconds", "tests", "share", "record", "change"]
    assert lines[1].split() == [BAKED, "30.0", "31", "75.0%", "new"]
    assert lines[2].split() == [BAKE, "10.0", "184", "25.0%", "new"]
    assert lines[3].split() == ["total", "40.0", "215", "100.0%", "new"]
    assert "`make record-times`" in lines[4]


def test_the_table_shows_each_files_record_and_its_change() -> None:
    times = {BAKE: FileTime(12.0, 184), BAKED: FileTime(20.0, 31)}
    record = record_of(test_bake=10.0, test_baked_project=25.0)
    lines = table(times, record)
    assert lines[1].split()[-2:] == ["25.0", "-5.0"]
    assert lines[2].split()[-2:] == ["10.0", "+2.0"]
    assert lines[3].split()[-2:] == ["35.0", "-3.0"]
    assert lines[4] == "record: 2026-12-08, 2 cores, made up"


def test_a_file_more_than_the_budget_over_its_record_is_flagged_with_what_to_do() -> None:
    times = {BAKED: FileTime(100.0 + BUDGET_SECONDS + 0.5, 31), BAKE: FileTime(50.0, 184)}
    record = record_of(test_bake=21.0, test_baked_project=100.0)
    assert over_budget(times, record) == {BAKED: BUDGET_SECONDS + 0.5}
    lines = table(times, record)
    assert lines[1].endswith(" !")
    assert not lines[2].endswith("!")
    assert lines[-1].startswith(f"! {BAKED} took 30.5 s more than its record")
    assert f'"{README_SECTION}"' in lines[-1]


def test_a_file_exactly_at_the_budget_is_not_flagged() -> None:
    times = {BAKE: FileTime(10.0 + BUDGET_SECONDS, 184)}
    assert over_budget(times, record_of(test_bake=10.0)) == {}


def test_a_new_file_counts_from_nothing() -> None:
    times = {BAKE: FileTime(BUDGET_SECONDS + 5, 184), BAKED: FileTime(5.0, 31)}
    assert over_budget(times, record_of(test_other=1.0)) == {BAKE: BUDGET_SECONDS + 5}
    assert over_budget(times, None) == {BAKE: BUDGET_SECONDS + 5}
    assert f"! {BAKE} took 35.0 s and has no record" in table(times, None)[-1]


def test_only_a_full_run_that_passed_may_be_recorded() -> None:
    assert reasons_for_a_full_run() == []
    partial_runs = [
        {"from_testpaths": False},
        {"keyword": "lint"},
        {"markexpr": "not containers"},
        {"deselected": 3},
        {"collect_only": True},
        {"passed": False},
    ]
    for change in partial_runs:
        assert len(reasons_for_a_full_run(**change)) == 1, change


def test_a_written_record_reads_back_as_the_same_times(tmp_path: Path) -> None:
    times = {BAKE: FileTime(12.34, 184), BAKED: FileTime(1500.0, 31)}
    text = record_document(times, "2026-12-08", 2)
    written = tmp_path / "suite-times.json"
    written.write_text(text, encoding="utf-8")
    record = load_record(written)
    assert record is not None
    assert record.files == {BAKE: FileTime(12.3, 184), BAKED: FileTime(1500.0, 31)}
    assert (record.date, record.cores) == ("2026-12-08", 2)
    assert json.loads(text)["total_seconds"] == 1512.3


def test_the_committed_record_is_readable_and_says_where_it_came_from() -> None:
    record = load_record(RECORD)
    assert record is not None, f"{RECORD} is missing: run `make record-times`"
    assert record.source
    assert record.cores
    assert all(path.startswith("tests/") for path in record.files)
