"""Phase 2, web: the default bake's `web` line and the two baselines under wrk, interleaved."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from . import growth, procs
from .bakes import Bake, seed
from .load import Loader
from .plan import Plan, progress
from .report import fmt, incident_lines, median, ratio, spread, table
from .servers import Scenario, WebServer, launch_baseline, launch_web, page_items
from .sql import SqlPipe

# Scenarios also measured against a second web process with LOG_LEVEL=INFO (access logs on).
INFO_TWINS = ("healthz", "first")
# Scenarios also measured against a baseline, the least code that answers them.
BASELINE_OF = {"healthz": "bare", "get": "pooled"}
BASELINE_LABELS = {
    "bare": "bare Flask returning a constant",
    "pooled": "Flask + pooled psycopg2, same SELECT",
}


def deep_cursor(port: int, after: int) -> str:
    """The cursor after `after` items, found by paging through once (100 at a time)."""
    cursor, seen = None, 0
    for _ in range(after // 100 + 2):
        size = min(100, after - seen)
        query = f"?limit={size}" + (f"&cursor={cursor}" if cursor else "")
        status, body = procs.http_request("GET", port, f"/api/todos{query}")
        if status != 200:
            raise RuntimeError(f"GET /api/todos{query} answered {status}")
        page = json.loads(body)
        seen += len(page["items"])
        cursor = page["next_cursor"]
        if seen >= after:
            return str(cursor)
    raise RuntimeError(f"could not page {after} items deep")


def scenarios_for(plan: Plan, port: int, some_id: int) -> list[Scenario]:
    """The six scenarios of the web table, in the order of a round."""
    page2_cursor = deep_cursor(port, plan.page_size)
    cursor = deep_cursor(port, plan.deep_after)
    limit = f"/api/todos?limit={plan.page_size}"
    return [
        Scenario("healthz", "GET /healthz", "GET", "/healthz"),
        Scenario("first", f"GET {limit} (first page)", "GET", limit),
        # A cursor one page in separates what any cursor costs from what depth costs.
        Scenario(
            "page2",
            f"GET {limit}&cursor=... (after {plan.page_size})",
            "GET",
            f"{limit}&cursor={page2_cursor}",
        ),
        Scenario(
            "deep",
            f"GET {limit}&cursor=... (after {plan.deep_after})",
            "GET",
            f"{limit}&cursor={cursor}",
        ),
        Scenario("get", "GET /api/todos/<id>", "GET", f"/api/todos/{some_id}"),
        Scenario("post", "POST /api/todos", "POST", "/api/todos"),
    ]


def measure_web(plan: Plan, loader: Loader, pipe: SqlPipe, b: Bake, logs: Path) -> dict[str, Any]:
    """Interleaved wrk rounds over the scenarios, the INFO twins and the baselines; then
    GET one todo at several connection counts; then the memory of every web process."""
    ids = seed(pipe, b, plan.seed_todos)
    progress(f"seeded {len(ids)} todos")
    some_id = ids[len(ids) // 2]
    incidents: list[str] = []
    web = WebServer("web-warning", lambda: launch_web(b, logs, "web-warning"), incidents)
    web_info = WebServer(
        "web-info", lambda: launch_web(b, logs, "web-info", LOG_LEVEL="INFO"), incidents
    )
    baselines = {
        "bare": WebServer("bare", lambda: launch_baseline(b, logs, "bare"), incidents),
        "pooled": WebServer(
            "pooled",
            lambda: launch_baseline(b, logs, "pooled"),
            incidents,
            probe=f"/api/todos/{some_id}",
        ),
    }
    servers = [web, web_info, *baselines.values()]
    try:
        progress(
            f"web (WARNING) on :{web.port}, web (INFO) on :{web_info.port}, bare Flask on "
            f":{baselines['bare'].port}, pooled psycopg2 on :{baselines['pooled'].port}"
        )
        scenarios = scenarios_for(plan, web.port, some_id)
        by_key = {s.key: s for s in scenarios}
        deep = by_key["deep"]
        if page_items(web.port, deep.path) != plan.page_size:
            raise RuntimeError(f"the deep page does not hold {plan.page_size} items")
        web.warm(scenarios)
        web_info.warm([by_key[k] for k in INFO_TWINS])
        for key, name in BASELINE_OF.items():
            baselines[name].warm([by_key[key]])

        # The run order of one round: each LOG_LEVEL=INFO twin and each baseline next to
        # its baked run, the three list pages next to each other. Odd rounds run it
        # backwards (A B B A ...), so a load on the machine that rises or falls during the
        # session hits the members of each ratio alike.
        order: list[tuple[str, str, Scenario, WebServer]] = []
        for s in scenarios:
            if s.key in INFO_TWINS:
                order.append((f"{s.key}_info", f"{s.label} [LOG_LEVEL=INFO]", s, web_info))
            order.append((s.key, s.label, s, web))
            if s.key in BASELINE_OF:
                name = BASELINE_OF[s.key]
                label = f"{s.label} [baseline: {BASELINE_LABELS[name]}]"
                order.append((f"{s.key}_{name}", label, s, baselines[name]))
        runs: dict[str, list[dict[str, Any]]] = {key: [] for key, *_ in order}
        labels = {key: label for key, label, *_ in order}

        def our_pids() -> dict[str, set[int]]:
            """Every web process (and its workers), and their PostgreSQL backends."""
            web_pids = {pid for server in servers for pid in procs.group_members(server.proc.pid)}
            rows = pipe.sql(
                b.label, b.url, "SELECT pid FROM pg_stat_activity WHERE datname = %s", [b.database]
            )
            return {"web": web_pids, "postgres": {int(row[0]) for row in rows}}

        for round_no in range(plan.web_reps):
            for key, label, scenario, server in order if round_no % 2 == 0 else order[::-1]:
                log_path = server.proc.log_path
                before = log_path.stat().st_size if log_path else 0
                with procs.CpuMeter(our_pids) as cpu:
                    result = server.run(label, lambda port, s=scenario: loader.run(port, s))
                log_path = server.proc.log_path  # a new file if it had to be restarted
                after = log_path.stat().st_size if log_path else 0
                runs[key].append(
                    {
                        **asdict(result),
                        "log_bytes_per_request": max(after - before, 0) / max(result.requests, 1),
                        "ours_cpu_pct": cpu.ours_pct,
                        "others_cpu_pct": cpu.others_pct,
                        "cpu_us_per_request": {
                            name: 1e6 * used / max(result.requests, 1)
                            for name, used in cpu.seconds.items()
                        },
                        "service_cpu_us": 1e6
                        * (cpu.seconds.get("web", 0.0) + cpu.seconds.get("postgres", 0.0))
                        / max(result.requests, 1),
                    }
                )
                progress(
                    f"round {round_no + 1}/{plan.web_reps} {label}: "
                    f"{result.rps:,.0f} req/s p50 {result.p50_ms:.2f} ms "
                    f"p99 {result.p99_ms:.2f} ms errors {result.errors}; CPU: ours "
                    f"{cpu.ours_pct:.0f}%, others {cpu.others_pct:.0f}%"
                )

        connections = growth.measure_connections(
            plan, loader, web, baselines["pooled"], by_key["get"]
        )
        memory = {}
        for name, server in (("baked", web), *baselines.items()):
            workers = procs.child_pids(server.proc.pid)
            memory[name] = {
                "master_rss_kib": procs.rss_kib(server.proc.pid),
                "worker_rss_kib": [procs.rss_kib(pid) for pid in workers],
                "worker_peak_kib": server.peak_rss_kib(),
                "worker_pss_kib": [procs.pss_kib(pid) for pid in workers],
            }
        progress(f"web load done; memory (KiB) {memory}")
        log_path = web.proc.log_path
        warning_lines = len(log_path.read_text(errors="replace").splitlines()) if log_path else 0
    finally:
        for server in servers:
            server.stop()
    todo_count = pipe.sql(b.label, b.url, "SELECT count(*) FROM todos")[0][0]
    return {
        "scenarios": [asdict(s) for s in scenarios],
        "labels": labels,
        "runs": runs,
        "connections": connections,
        "memory_kib": memory,
        "warning_log_lines": warning_lines,
        "todos_after": todo_count,
        "incidents": incidents,
    }


def paired(runs: dict[str, list[dict[str, Any]]], top: str, bottom: str, measure: str) -> str:
    """Ratio of the medians, and the median of the ratios of runs of the same round."""
    a = [r[measure] for r in runs[top]]
    b = [r[measure] for r in runs[bottom]]
    same_round = [ratio(x, y) for x, y in zip(a, b, strict=False)]
    return f"{fmt(ratio(median(a), median(b)), 2)} ({fmt(median(same_round), 2)})"


def render_web(plan: Plan, web: dict[str, Any]) -> list[str]:
    """The web section: throughput and latency, CPU per request, ratios."""
    out: list[str] = []
    add = out.append
    runs, labels = web["runs"], web["labels"]
    add("## Web: default bake, `web` line, WEB_CONCURRENCY=2 (gevent workers), LOG_LEVEL=WARNING")
    add("")
    add(
        f"{plan.web_reps} run(s) of {plan.duration:g} s per scenario, round-robin in the "
        "order of the table, backwards every other round; "
        f"{plan.wrk_threads} load threads, {plan.wrk_connections} "
        f"connections; {plan.seed_todos:,} todos seeded ({web['todos_after']:,} after the POST "
        "runs). The [LOG_LEVEL=INFO] rows hit a second, identical web process that logs every "
        "request, each run next to its WARNING twin; the [baseline] rows hit the least "
        "service that answers the same request (`bench/baselines/`), under the same gunicorn "
        "settings and interpreter, each run next to the baked one."
    )
    add("")
    rows = []
    for key, values in runs.items():
        rows.append(
            [
                labels[key],
                *spread([r["rps"] for r in values], 0),
                fmt(median(r["p50_ms"] for r in values), 2),
                fmt(median(r["p99_ms"] for r in values), 2),
                fmt(sum(r["errors"] for r in values)),
                fmt(median(r["ours_cpu_pct"] for r in values), 0),
                fmt(median(r["others_cpu_pct"] for r in values), 0),
            ]
        )
    headers = ["scenario", "req/s median", "min", "max", "runs", "p50 ms", "p99 ms", "errors"]
    add(table([*headers, "CPU % ours", "CPU % others"], rows))
    add("")
    every_other = [r["others_cpu_pct"] for values in runs.values() for r in values]
    add(
        "p50 and p99 are the medians over the runs of each run's percentile; errors are "
        "socket errors, timeouts and non-2xx answers, summed over the runs. CPU % is the "
        "share of the whole machine (all cores) during the run, median over the runs: *ours* "
        "is the web processes, their PostgreSQL backends, wrk and the harness; *others* is "
        "everything else on this shared machine (it ranged "
        f"{fmt(min(every_other), 0)} to {fmt(max(every_other), 0)}% over the runs)."
    )
    add("")
    add("### CPU time per request")
    add("")
    add(
        "CPU microseconds per request, median over the runs, measured from `/proc`: the "
        "gunicorn processes (*web*), the PostgreSQL backends serving them (*postgres*) and "
        "wrk with the harness (*load generator*). Unlike req/s, these hardly depend on what "
        "else the machine is doing, so they are the figures to compare between scenarios."
    )
    add("")
    cpu_rows = []
    for key, values in runs.items():
        parts = {
            name: median(r["cpu_us_per_request"].get(name, float("nan")) for r in values)
            for name in ("web", "postgres", "load generator")
        }
        cpu_rows.append(
            [labels[key], *(fmt(value, 0) for value in parts.values()), fmt(sum(parts.values()), 0)]
        )
    add(table(["scenario", "web µs", "postgres µs", "load generator µs", "total µs"], cpu_rows))
    add("")
    add("### Ratios")
    add("")
    add(
        "Each cell: the ratio of the medians, and in brackets the median of the ratios of "
        "runs from the same round (the more robust one when the machine's load drifts). "
        "*Throughput* divides req/s; *cost* divides the CPU per request of the web processes "
        "plus their PostgreSQL backends, which noise from other processes hardly moves."
    )
    add("")
    log_bytes = median(r["log_bytes_per_request"] for r in runs["healthz_info"])
    comparisons = [
        ("deep page vs first page (contract: ≈ 1)", "deep", "first"),
        (f"deep page vs page 2 (cursor after {plan.page_size}): depth alone, ≈ 1", "deep", "page2"),
        ("page 2 vs first page: the price of using a cursor", "page2", "first"),
        ("GET one todo vs GET /healthz: the database path", "get", "healthz"),
        ("first page vs GET one todo: 20 rows instead of 1", "first", "get"),
        ("POST vs GET one todo: a committed write instead of a read", "post", "get"),
        (
            f"GET /healthz, LOG_LEVEL=INFO vs WARNING ({log_bytes:.0f} log bytes/request)",
            "healthz_info",
            "healthz",
        ),
        ("first page, LOG_LEVEL=INFO vs WARNING", "first_info", "first"),
        ("GET /healthz vs bare Flask", "healthz", "healthz_bare"),
        ("GET one todo vs Flask + pooled psycopg2", "get", "get_pooled"),
    ]
    ratio_rows = [
        [label, paired(runs, a, b, "rps"), paired(runs, a, b, "service_cpu_us")]
        for label, a, b in comparisons
    ]
    add(table(["comparison", "throughput ratio", "cost ratio"], ratio_rows))
    add("")
    add(
        f"With LOG_LEVEL=WARNING the web process wrote {web['warning_log_lines']} log lines "
        "in all its runs (access lines are INFO)."
    )
    add("")
    out.extend(incident_lines(web["incidents"]))
    return out
