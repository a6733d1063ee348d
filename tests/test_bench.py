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
    "### GET /api/todos/<id> by connections, against Flask + pooled psycopg2",
    "## Database round trips per request",
    "## Where the time goes",
    "## Worker: celery bake",
    "## Memory",
    "## Start-up",
    "## The newcomer's clock",
    "## Clean-up",
]
LIMIT_FIGURES = [
    "`GET /healthz`, req/s",
    "`GET /api/todos/<id>`, req/s",
    "start → first 200, s",
    "peak RSS per worker, MiB",
    "PSS per worker, MiB",
]
# Figures the table gives for what they explain, without a target of their own.
UNTARGETED_FIGURES = {"PSS per worker, MiB"}
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


def test_limits_table_gives_each_figure_as_a_ratio_with_its_target(
    smoke: dict[str, Any],
) -> None:
    limits = next(rows for name, rows in tables(smoke["report"]).items() if "## Limits" in name)
    assert [row["figure"] for row in limits] == LIMIT_FIGURES
    for row in limits:
        for column in ("baked", "limit's", "ratio", "range"):
            assert FIGURE.fullmatch(row[column]), f"{row['figure']}: {column} is {row[column]!r}"
        if row["figure"] in UNTARGETED_FIGURES:
            assert (row["target"], row["met"]) == ("-", "-"), row
        else:
            assert row["target"][:2] in ("≥ ", "≤ "), row
            assert row["met"] in ("yes", "**no**"), row


def test_every_figure_of_every_measured_table_parses(smoke: dict[str, Any]) -> None:
    # Cells that say a figure does not apply: a master has no peak of its own in the
    # memory table, and the test plan leaves out the pip-only install.
    not_applicable = {"-", "not run in the test plan"}
    words = {"limit", "what one request sends", "target", "met", "package"}
    for name, rows in tables(smoke["report"]).items():
        if name.endswith("/ fact"):
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
