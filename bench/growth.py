"""How the baked service grows: paging in ever larger tables, and GET one todo at more
connections (against its pooled-psycopg2 limit, both logging each request)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from . import procs
from .bakes import Bake, run_release
from .load import Loader
from .plan import Plan, progress
from .report import fmt, median, ratio, span, spread, table
from .servers import Scenario, WebServer, launch_web, page_items
from .sql import SqlPipe

# Seeded created_at values start here, one second apart, so that every row's position in
# the newest-first order is known without asking the service.
EPOCH = "2020-01-01 00:00:00+00"


def measure_connections(
    plan: Plan, loader: Loader, baked: WebServer, pooled: WebServer, get: Scenario
) -> dict[str, Any]:
    """GET one todo at each connection count, baked and pooled baseline side by side (the
    servers of the web phase: the web line at INFO, the baseline +log)."""
    out: dict[str, Any] = {}
    for connections in plan.sweep_connections:
        runs: dict[str, list[dict[str, float]]] = {"baked": [], "pooled": []}
        for rep in range(plan.sweep_reps):
            pair = [("baked", baked), ("pooled", pooled)]
            for name, server in pair if rep % 2 == 0 else pair[::-1]:
                result = server.run(
                    f"{get.label} at {connections} connections",
                    lambda port, c=connections: loader.run(port, get, plan.growth_duration, c),
                )
                runs[name].append(dataclasses.asdict(result))
        out[str(connections)] = runs
        progress(
            f"{connections} connections: GET one todo "
            f"{median(r['rps'] for r in runs['baked']):,.0f} req/s, pooled baseline "
            f"{median(r['rps'] for r in runs['pooled']):,.0f} req/s"
        )
    return out


def seed_rows(pipe: SqlPipe, b: Bake, count: int, after: int) -> None:
    """Insert count todos with created_at EPOCH + after + i seconds, in one statement."""
    pipe.sql(
        b.label,
        b.url,
        "INSERT INTO todos (title, done, created_at, updated_at) "
        "SELECT 'seeded todo ' || i, i %% 3 = 0, t, t FROM generate_series(1, %s) AS i, "
        "LATERAL (SELECT %s::timestamptz + make_interval(secs => %s + i)) AS s(t)",
        [count, EPOCH, after],
    )


def measure_growth(
    plan: Plan, loader: Loader, pipe: SqlPipe, b: Bake, logs: Path, incidents: list[str]
) -> dict[str, Any]:
    """First page against a page 90% deep, in tables of each size (one database, emptied
    between sizes), interleaved A B B A within a size."""
    database = f"{b.database}_growth"
    grown = dataclasses.replace(b, label="growth", database=database)
    grown.url = pipe.create_database(database)
    run_release(grown, logs)
    server = WebServer("web-growth", lambda: launch_web(grown, logs, "web-growth"), incidents)
    out: dict[str, Any] = {}
    limit = f"/api/todos?limit={plan.page_size}"
    try:
        for size in plan.growth_sizes:
            depth = size * 9 // 10
            pipe.sql(grown.label, grown.url, "TRUNCATE todos RESTART IDENTITY")
            # The deep cursor without paging 90% of a million rows: seed the oldest 10%,
            # take the cursor after the newest of them (the first page of one), then seed
            # the newer 90% on top; that cursor then stands `depth` rows deep.
            seed_rows(pipe, grown, size - depth, 0)
            status, body = procs.http_request("GET", server.port, "/api/todos?limit=1")
            if status != 200:
                raise RuntimeError(f"GET /api/todos?limit=1 answered {status}")
            next_cursor = json.loads(body)["next_cursor"]
            seed_rows(pipe, grown, depth - 1, size - depth)
            pipe.sql(grown.label, grown.url, "VACUUM ANALYZE todos")
            scenarios = [
                Scenario("first", f"first page, {size:,} rows", "GET", limit),
                Scenario(
                    "deep",
                    f"page after {depth:,} rows, {size:,} rows",
                    "GET",
                    f"{limit}&cursor={next_cursor}",
                ),
            ]
            if page_items(server.port, scenarios[1].path) != plan.page_size:
                raise RuntimeError(f"the page {depth:,} deep is not a full page")
            server.warm(scenarios)
            runs: dict[str, list[dict[str, float]]] = {"first": [], "deep": []}
            for rep in range(plan.growth_reps):
                for s in scenarios if rep % 2 == 0 else scenarios[::-1]:
                    result = server.run(
                        s.label, lambda port, s=s: loader.run(port, s, plan.growth_duration)
                    )
                    runs[s.key].append(dataclasses.asdict(result))
            out[str(size)] = {"depth": depth, "runs": runs}
            progress(
                f"{size:,} rows: first page {median(r['rps'] for r in runs['first']):,.0f} "
                f"req/s, {depth:,} deep {median(r['rps'] for r in runs['deep']):,.0f} req/s"
            )
    finally:
        server.stop()
    return out


def same_round_ratios(top: list[dict[str, float]], bottom: list[dict[str, float]]) -> list[float]:
    """req/s ratios of runs from the same round."""
    return [ratio(a["rps"], b["rps"]) for a, b in zip(top, bottom, strict=False)]


def render_growth(plan: Plan, growth: dict[str, Any], connections: dict[str, Any]) -> list[str]:
    """The growth section: paging depth by table size, and throughput by connections."""
    out: list[str] = []
    add = out.append
    add("## Growth")
    add("")
    add("### Paging: first page against a page 90% deep, by table size")
    add("")
    add(
        f"`GET /api/todos?limit={plan.page_size}`, without and with a cursor 90% into the "
        f"table; {plan.growth_reps} run(s) of {plan.growth_duration:g} s each, A B B A. "
        "Keyset paging keeps *deep / first* near 1 at every size, and the first page's "
        "rate should not fall as the table grows."
    )
    add("")
    rows = []
    smallest = None
    for size, entry in growth.items():
        runs = entry["runs"]
        first = median(r["rps"] for r in runs["first"])
        smallest = smallest or first
        ratios = same_round_ratios(runs["deep"], runs["first"])
        rows.append(
            [
                f"{int(size):,}",
                f"{entry['depth']:,}",
                fmt(first, 0),
                fmt(median(r["rps"] for r in runs["deep"]), 0),
                fmt(ratio(median(r["rps"] for r in runs["deep"]), first), 2),
                span(ratios, 2),
                fmt(ratio(first, smallest), 2),
                f"{fmt(median(r['p50_ms'] for r in runs['first']), 1)} / "
                f"{fmt(median(r['p99_ms'] for r in runs['first']), 1)}",
                f"{fmt(median(r['p50_ms'] for r in runs['deep']), 1)} / "
                f"{fmt(median(r['p99_ms'] for r in runs['deep']), 1)}",
                fmt(sum(r["errors"] for values in runs.values() for r in values)),
            ]
        )
    headers = [
        "rows",
        "deep page after",
        "first page req/s",
        "deep page req/s",
        "deep / first",
        "range",
        "first page vs smallest table",
        "first p50 / p99 ms",
        "deep p50 / p99 ms",
        "errors",
    ]
    add(table(headers, rows))
    add("")
    add("### GET /api/todos/<id> by connections, against Flask + pooled psycopg2 +log")
    add("")
    add(
        f"{plan.sweep_reps} run(s) of {plan.growth_duration:g} s at each count, baked and "
        "baseline alternating, both writing an access line per request (the web line at "
        "LOG_LEVEL=INFO, the baseline with gunicorn's `--access-logfile -`); wrk with "
        "min(2, connections) threads. The baseline's two sync "
        "workers serve one request each at a time, and the baked service's two gevent workers "
        "have two cores between them, so more connections mostly queue: throughput should hold "
        "and latency grow with the queue."
    )
    add("")
    rows = []
    for count, runs in connections.items():
        baked, pooled = runs["baked"], runs["pooled"]
        rows.append(
            [
                count,
                *spread([r["rps"] for r in baked], 0)[:3],
                fmt(median(r["rps"] for r in pooled), 0),
                fmt(ratio(median(r["rps"] for r in baked), median(r["rps"] for r in pooled)), 2),
                span(same_round_ratios(baked, pooled), 2),
                f"{fmt(median(r['p50_ms'] for r in baked), 1)} / "
                f"{fmt(median(r['p99_ms'] for r in baked), 1)}",
                f"{fmt(median(r['p50_ms'] for r in pooled), 1)} / "
                f"{fmt(median(r['p99_ms'] for r in pooled), 1)}",
                fmt(sum(r["errors"] for values in runs.values() for r in values)),
            ]
        )
    headers = [
        "connections",
        "baked req/s",
        "min",
        "max",
        "baseline req/s",
        "baked / baseline",
        "range",
        "baked p50 / p99 ms",
        "baseline p50 / p99 ms",
        "errors",
    ]
    add(table(headers, rows))
    add("")
    return out
