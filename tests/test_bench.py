"""The benchmark's smoke run: `make bench` keeps working and reports every figure.

The bench runs once, in its smallest plan (BENCH_QUICK=test: 1-second runs, tables of
10^3 and 10^4 rows, no pip-only install), with its report written to a temporary
folder. Targets are never asserted here: the machines that run tests are small and
shared, so the figures live in the report only. What is checked is that every section
and figure is there and parses, that no run saw an error, and that nothing the bench
started outlives it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from template import TEMPLATE_DIR

pytestmark = pytest.mark.bench

# About two minutes on a quiet 2-core machine; the bound leaves room for a busy one.
SMOKE_TIMEOUT_S = 420
SECTIONS = [
    "## Limits: the baked service against the least one could write",
    "## Web: default bake",
    "### CPU time per request",
    "### Ratios",
    "## Observability: observability=opentelemetry bake against the default bake",
    "## Growth",
    "### Paging: first page against a page 90% deep, by table size",
    "### GET /api/todos/<id> by connections, against Flask + pooled psycopg2 +log",
    "## Database round trips per request",
    "## Where the time goes",
    "## Worker: celery bake",
    "## Memory",
    "## Start-up",
    "## Start-up work by library",
    "## The newcomer's clock",
    "## Clean-up",
]
# (figure, limit) of each row of the limits table, in order.
LIMIT_ROWS = [
    ("`GET /healthz`, req/s", "bare Flask +log"),
    ("`GET /api/todos/<id>`, req/s", "SQLAlchemy app +log"),
    ("`GET /api/todos/<id>`, req/s", "pooled psycopg2 +log"),
    ("`GET /api/todos` first page, req/s", "SQLAlchemy app +log"),
    ("start → first 200, s", "SQLAlchemy app +log"),
    ("start → first 200, s", "bare Flask +log"),
    ("PSS per worker, MiB", "bare Flask +log"),
    ("private memory (USS) per worker, MiB", "bare Flask +log"),
    ("peak RSS (VmHWM, shared pages in full) per worker, MiB", "bare Flask +log"),
]
# Rows the table gives for what they explain, without a target of their own.
UNTARGETED_ROWS = {LIMIT_ROWS[5], LIMIT_ROWS[7], LIMIT_ROWS[8]}
# Rows measured at LOG_LEVEL=INFO only (start-up); the others give WARNING figures too.
INFO_ONLY_ROWS = {LIMIT_ROWS[4], LIMIT_ROWS[5]}
WARNING_COLUMNS = ("baked at WARNING", "unlogged limit's", "ratio at WARNING", "range at WARNING")
# The web phase's runs against the baselines, by run key: each limit with gunicorn's access
# line ("_log", next to the web line at INFO) and without (next to its WARNING twin).
BASELINE_RUNS = [
    f"{scenario}_{baseline}{logged}"
    for scenario, baselines in (
        ("healthz", ["bare"]),
        ("get", ["sqlalchemy", "pooled"]),
        ("first", ["sqlalchemy"]),
    )
    for baseline in baselines
    for logged in ("", "_log")
]
# A figure: a number, or two as a range ("a to b"), a pair ("a / b") or a ratio with the
# median of same-round ratios in brackets ("a (b)").
NUMBER = r"-?[\d,]+(\.\d+)?"
FIGURE = re.compile(rf"{NUMBER}(( to | / ){NUMBER}| \({NUMBER}\))?")


def run_bench(out: Path, database_url: str) -> subprocess.CompletedProcess[str]:
    """`python -m bench` in the test plan; SIGTERM (the bench then cleans up) if it hangs."""
    env = {
        **os.environ,
        "BENCH_QUICK": "test",
        "BENCH_OUTPUT": str(out),
        "TEST_DATABASE_URL": database_url,
    }
    env.pop("BENCH_DURATION", None)
    with subprocess.Popen(
        [sys.executable, "-m", "bench"],
        cwd=TEMPLATE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as bench:
        try:
            stdout, stderr = bench.communicate(timeout=SMOKE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            bench.send_signal(signal.SIGTERM)
            try:
                stdout, stderr = bench.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                bench.kill()  # its clean-up hung too; its processes may be left behind
                stdout, stderr = bench.communicate()
            pytest.fail(
                f"the bench took over {SMOKE_TIMEOUT_S} s; its last lines:\n{stderr[-3000:]}"
            )
    return subprocess.CompletedProcess(bench.args, bench.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory, test_database_url: str) -> dict[str, Any]:
    """One smoke run of the bench: its Markdown report and its raw results."""
    out = tmp_path_factory.mktemp("bench")
    done = run_bench(out, test_database_url)
    assert done.returncode == 0, (
        f"`BENCH_QUICK=test make bench` failed ({done.returncode}); the end of its log:\n"
        f"{done.stderr[-4000:]}"
    )
    report = (out / "latest.md").read_text(encoding="utf-8")
    assert done.stdout == report, "stdout must be the report and nothing else"
    return {"report": report, "results": json.loads((out / "latest.json").read_text())}


def tables(report: str) -> dict[str, list[dict[str, str]]]:
    """Every Markdown table of the report, by the heading above it, as rows of cells."""
    found: dict[str, list[dict[str, str]]] = {}
    heading, lines = "", report.splitlines()
    for number, line in enumerate(lines):
        if line.startswith("#"):
            heading = line
        is_header = line.startswith("| ") and number + 1 < len(lines)
        if is_header and lines[number + 1].startswith("| ---"):
            headers = [cell.strip() for cell in line.strip("|").split(" | ")]
            rows = []
            for row in lines[number + 2 :]:
                if not row.startswith("|"):
                    break
                cells = [cell.strip() for cell in row.strip("|").split(" | ")]
                rows.append(dict(zip(headers, cells, strict=True)))
            found[f"{heading} / {headers[0]}"] = rows
    return found


def test_report_has_every_section(smoke: dict[str, Any]) -> None:
    missing = [section for section in SECTIONS if section not in smoke["report"]]
    assert not missing, f"sections missing from the report: {missing}"


def limits_table(report: str) -> list[dict[str, str]]:
    """The rows of the report's first table, its limits."""
    return next(rows for name, rows in tables(report).items() if "## Limits" in name)


def test_limits_table_gives_each_figure_as_a_ratio_with_its_target(
    smoke: dict[str, Any],
) -> None:
    limits = limits_table(smoke["report"])
    assert [(row["figure"], row["limit"]) for row in limits] == LIMIT_ROWS
    for row in limits:
        which = (row["figure"], row["limit"])
        for column in ("baked", "limit's", "ratio", "range"):
            assert FIGURE.fullmatch(row[column]), f"{which}: {column} is {row[column]!r}"
        if which in UNTARGETED_ROWS:
            assert (row["target"], row["met"]) == ("-", "-"), row
        else:
            assert row["target"][:2] in ("≥ ", "≤ "), row
            assert row["met"] in ("yes", "**no**"), row
        for column in WARNING_COLUMNS:
            if which in INFO_ONLY_ROWS:
                assert row[column] == "-", f"{which}: {column} is {row[column]!r}"
            else:
                assert FIGURE.fullmatch(row[column]), f"{which}: {column} is {row[column]!r}"


def test_the_baselines_ran_with_and_without_their_access_line(smoke: dict[str, Any]) -> None:
    results = smoke["results"]
    runs = results["web"]["runs"]
    for key in [*BASELINE_RUNS, "healthz_warning", "get_warning", "first_warning"]:
        assert len(runs.get(key, [])) == results["plan"]["web_reps"], key
        assert all(run["requests"] > 0 and run["rps"] > 0 for run in runs[key]), key
    # gunicorn's access line is a line of text per request; without it, nothing is written.
    for key in BASELINE_RUNS:
        written = min(run["log_bytes_per_request"] for run in runs[key])
        assert (written > 20) == key.endswith("_log"), (key, written)
    assert min(run["log_bytes_per_request"] for run in runs["healthz"]) > 20
    memory = results["web"]["memory_kib"]
    for name in ("baked", "baked_warning", "bare", "bare_log", "sqlalchemy_log", "pooled_log"):
        assert all(memory[name]["worker_uss_kib"]), (name, memory[name])
    startup = results["startup_s"]
    assert [len(startup[name]) for name in ("baked", "sqlalchemy", "bare")] == [
        results["plan"]["startup_reps"]
    ] * 3


def test_every_figure_of_every_measured_table_parses(smoke: dict[str, Any]) -> None:
    # Cells that say a figure does not apply: a master has no peak of its own in the
    # memory table, and the test plan leaves out the pip-only install.
    not_applicable = {"-", "not run in the test plan"}
    words = {"limit", "what one request sends", "target", "met", "package"}
    for name, rows in tables(smoke["report"]).items():
        # The limits table is checked, cell by cell, by the test above.
        if name.endswith(("/ fact", "/ figure")):
            continue
        for row in rows:
            label, *cells = row.items()
            if label[1] in words:
                continue
            for column, cell in cells:
                if column in words or (cell in not_applicable and "Memory" in name):
                    continue
                if cell in not_applicable and "newcomer" in name:
                    continue
                assert FIGURE.fullmatch(cell), f"{name}, {column} of {row}: {cell!r}"


def test_no_run_saw_an_error(smoke: dict[str, Any]) -> None:
    results = smoke["results"]
    web_runs = [run for runs in results["web"]["runs"].values() for run in runs]
    sweep_runs = [
        run
        for by_server in results["web"]["connections"].values()
        for runs in by_server.values()
        for run in runs
    ]
    growth_runs = [
        run for size in results["growth"].values() for runs in size["runs"].values() for run in runs
    ]
    every_run = web_runs + sweep_runs + growth_runs
    assert every_run
    assert [run for run in every_run if run["errors"] or not run["requests"]] == []
    # A server that dies or loses a worker mid-run (on a shared machine, a neighbour's
    # cleanup can do it) is restarted and the run redone, at most three times before the
    # bench gives up and exits non-zero; each incident must then be in the report.
    for incident in results["web"]["incidents"]:
        assert incident.endswith("restarted and the run redone")
        assert f"- {incident}" in smoke["report"]


def test_the_traced_bake_exported_spans_and_counted_every_request(
    smoke: dict[str, Any],
) -> None:
    observed = smoke["results"]["observability"]
    every_run = [run for runs in observed["runs"].values() for run in runs]
    # Two scenarios, each against none, the option, and the option's traces alone.
    assert len(every_run) == 6 * smoke["results"]["plan"]["web_reps"]
    assert [run for run in every_run if run["errors"] or not run["requests"]] == []
    # At a 10% sampler a run of GET one todo holds hundreds of traced requests: their spans
    # must have reached the sink, and /metrics must have counted at least what wrk sent.
    assert observed["sink"]["posts"] > 0, observed["sink"]
    assert set(observed["sink"]["paths"]) == {"/v1/traces"}, observed["sink"]
    assert observed["requests_counted_by_metrics"] >= observed["requests_sent_to_traced"]
    ratios = next(
        rows
        for name, rows in tables(smoke["report"]).items()
        if name.startswith("## Observability") and name.endswith("/ comparison")
    )
    # The option is held to the target; its traces alone are shown without one.
    assert [row["met"] for row in ratios][2:] == ["", ""], ratios
    assert [row["met"] in ("yes", "**no**") for row in ratios[:2]] == [True, True], ratios


def test_reading_one_todo_sends_one_query_to_the_database(smoke: dict[str, Any]) -> None:
    # A count, not a time: the counting proxy sees every message the service sends. A
    # transaction (BEGIN, ROLLBACK) or a pre-ping would make it 3 or 4.
    roundtrips = smoke["results"]["roundtrips"]
    assert roundtrips["per_request"]["get"]["Q"] == 1, roundtrips["sequences"]["get"]


def test_growth_and_connection_figures_cover_the_plan(smoke: dict[str, Any]) -> None:
    results = smoke["results"]
    assert list(results["growth"]) == [str(size) for size in results["plan"]["growth_sizes"]]
    assert list(results["web"]["connections"]) == [
        str(count) for count in results["plan"]["sweep_connections"]
    ]
    clocks = results["newcomer"]["clocks"]
    assert list(clocks) == ["uv"]
    assert all(seconds > 0 for seconds in clocks["uv"]["steps"].values())


def test_every_process_the_bench_started_has_stopped(smoke: dict[str, Any]) -> None:
    started = smoke["results"]["processes"]["started"]
    assert started, "the bench recorded no processes"
    # Each was started in its own process group, whose id is its pid.
    alive = []
    for proc in started:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[0] != "Z" and int(fields[2]) == proc["pid"]:
                alive.append(f"{proc['name']}: pid {stat.parent.name}")
    assert alive == []


def test_every_database_the_bench_created_was_dropped(
    smoke: dict[str, Any], test_database_url: str
) -> None:
    created = smoke["results"]["databases"]
    assert created, "the bench recorded no databases"
    with psycopg2.connect(test_database_url, connect_timeout=5) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)", (created,))
        assert cursor.fetchall() == []
