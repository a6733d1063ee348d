"""Phase 2, web: the default bake's `web` line, its WARNING twin and the baselines under wrk,
interleaved."""

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
from .servers import (
    Scenario,
    WebServer,
    launch_baseline,
    launch_web,
    page_items,
    ready_all,
    stop_all,
)
from .sql import SqlPipe

# Scenarios also measured against a second, identical web process at LOG_LEVEL=WARNING
# (no access line): the main one runs at INFO, as the service ships.
WARNING_TWINS = ("healthz", "first", "get")
# The baselines (bench/baselines/), each run twice: with gunicorn's own access line on stdout
# ("+log", run next to the baked service at INFO) and without (next to its WARNING twin).
# name: (module, what it is)
BASELINES = {
    "bare": ("bare", "bare Flask returning a constant"),
    "pooled": ("pooled", "Flask + pooled psycopg2, same SELECT"),
    "sqlalchemy": ("sqlalchemy_app", "SQLAlchemy app: Flask + SQLAlchemy Core, same statements"),
}
# The baselines each scenario is measured against, the closest first.
BASELINES_OF = {"healthz": ("bare",), "first": ("sqlalchemy",), "get": ("sqlalchemy", "pooled")}
LOGGED = "_log"


def baseline_label(name: str) -> str:
    """What a baseline server is, "+log" when it writes the access line."""
    base = name.removesuffix(LOGGED)
    return BASELINES[base][1] + (" +log" if name.endswith(LOGGED) else "")


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


def run_order(
    scenarios: list[Scenario], web: WebServer, twin: WebServer, baselines: dict[str, WebServer]
) -> list[tuple[str, str, Scenario, WebServer]]:
    """One round: (run key, label, scenario, server) in the order they run.

    Each ratio's members sit side by side: for a scenario with a WARNING twin, its unlogged
    baselines, the twin, its logged baselines, then the baked run at INFO, the closest
    baseline next to the baked run it is compared with; the three list pages together."""
    order: list[tuple[str, str, Scenario, WebServer]] = []
    for s in scenarios:
        names = BASELINES_OF.get(s.key, ())
        if s.key in WARNING_TWINS:
            for name in reversed(names):
                label = f"{s.label} [baseline: {baseline_label(name)}]"
                order.append((f"{s.key}_{name}", label, s, baselines[name]))
            order.append((f"{s.key}_warning", f"{s.label} [LOG_LEVEL=WARNING]", s, twin))
            for name in reversed([name + LOGGED for name in names]):
                label = f"{s.label} [baseline: {baseline_label(name)}]"
                order.append((f"{s.key}_{name}", label, s, baselines[name]))
        order.append((s.key, s.label, s, web))
    return order


def measure_web(plan: Plan, loader: Loader, pipe: SqlPipe, b: Bake, logs: Path) -> dict[str, Any]:
    """Interleaved wrk rounds over the scenarios, the WARNING twins and the baselines; then
    GET one todo at several connection counts; then the memory of every web process."""
    ids = seed(pipe, b, plan.seed_todos)
    progress(f"seeded {len(ids)} todos")
    some_id = ids[len(ids) // 2]
    incidents: list[str] = []
    web = WebServer(
        "web-info",
        lambda: launch_web(b, logs, "web-info", LOG_LEVEL="INFO"),
        incidents,
        wait=False,
    )
    twin = WebServer(
        "web-warning", lambda: launch_web(b, logs, "web-warning"), incidents, wait=False
    )
    baselines = {}
    for base, (module, _) in BASELINES.items():
        # The pooled baseline answers GET one todo alone.
        probe = f"/api/todos/{some_id}" if base == "pooled" else "/healthz"
        for logged in (False, True):
            name = base + (LOGGED if logged else "")
            baselines[name] = WebServer(
                name,
                lambda module=module, logged=logged: launch_baseline(
                    b, logs, module, access_log=logged
                ),
                incidents,
                probe=probe,
                wait=False,
            )
    servers = [web, twin, *baselines.values()]
    try:
        ready_all(servers)
        progress(
            f"web (INFO) on :{web.port}, web (WARNING) on :{twin.port}, baselines on "
            + ", ".join(f"{name} :{server.port}" for name, server in baselines.items())
        )
        scenarios = scenarios_for(plan, web.port, some_id)
        by_key = {s.key: s for s in scenarios}
        deep = by_key["deep"]
        if page_items(web.port, deep.path) != plan.page_size:
            raise RuntimeError(f"the deep page does not hold {plan.page_size} items")
        same_answers(web, baselines, by_key)
        web.warm(scenarios)
        twin.warm([by_key[k] for k in WARNING_TWINS])
        for name, server in baselines.items():
            base = name.removesuffix(LOGGED)
            server.warm([by_key[key] for key, names in BASELINES_OF.items() if base in names])

        # Odd rounds run the order backwards (A B B A ...), so a load on the machine that
        # rises or falls during the session hits the members of each ratio alike.
        order = run_order(scenarios, web, twin, baselines)
        runs: dict[str, list[dict[str, Any]]] = {key: [] for key, *_ in order}
        labels = {key: label for key, label, *_ in order}

        def our_pids() -> dict[str, set[int]]:
            """Every web process (and its workers), and their PostgreSQL backends."""
            web_pids = procs.members_of_groups({server.proc.pid for server in servers})
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
            plan, loader, web, baselines["pooled" + LOGGED], by_key["get"]
        )
        memory = {
            name: memory_of(server)
            for name, server in (("baked", web), ("baked_warning", twin), *baselines.items())
        }
        progress(f"web load done; memory (KiB) {memory}")
        log_path = twin.proc.log_path
        warning_lines = len(log_path.read_text(errors="replace").splitlines()) if log_path else 0
    finally:
        stop_all(servers)
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


def same_answers(
    web: WebServer, baselines: dict[str, WebServer], by_key: dict[str, Scenario]
) -> None:
    """Raise unless every baseline answers its scenarios with the baked service's JSON."""
    for key, names in BASELINES_OF.items():
        path = by_key[key].path
        status, body = procs.http_request("GET", web.port, path)
        expected = json.loads(body)
        for name in names:
            for server in (baselines[name], baselines[name + LOGGED]):
                status, body = procs.http_request("GET", server.port, path)
                if status != 200 or json.loads(body) != expected:
                    raise RuntimeError(
                        f"{server.name} answers {path} with {status} {body[:200]!r}, "
                        f"not the baked service's {expected!r:.200}"
                    )


def memory_of(server: WebServer) -> dict[str, Any]:
    """The master's RSS, and each worker's RSS, peak RSS, PSS and USS (private pages), KiB."""
    workers = procs.child_pids(server.proc.pid)
    return {
        "master_rss_kib": procs.rss_kib(server.proc.pid),
        "worker_rss_kib": [procs.rss_kib(pid) for pid in workers],
        "worker_peak_kib": server.peak_rss_kib(),
        "worker_pss_kib": [procs.pss_kib(pid) for pid in workers],
        "worker_uss_kib": [procs.uss_kib(pid) for pid in workers],
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
    add("## Web: default bake, `web` line, WEB_CONCURRENCY=2 (gevent workers), LOG_LEVEL=INFO")
    add("")
    add(
        f"{plan.web_reps} run(s) of {plan.duration:g} s per scenario, round-robin in the "
        "order of the table, backwards every other round; "
        f"{plan.wrk_threads} load threads, {plan.wrk_connections} "
        f"connections; {plan.seed_todos:,} todos seeded ({web['todos_after']:,} after the POST "
        "runs). The web line runs as it ships, at LOG_LEVEL=INFO: one JSON access line per "
        "request on stdout, which goes to a file. The [LOG_LEVEL=WARNING] rows hit a second, "
        "identical web process that writes no access line. The [baseline] rows hit the least "
        "service that answers the same request (`bench/baselines/`), under the same gunicorn "
        "settings and interpreter: with *+log*, gunicorn writes its own text access line per "
        "request to stdout, into a file as well, and the run sits next to the baked run at "
        "INFO; without, it writes nothing and sits next to the WARNING twin."
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
    log_bytes = median(r["log_bytes_per_request"] for r in runs["healthz"])
    bare_bytes = median(r["log_bytes_per_request"] for r in runs["healthz_bare_log"])
    comparisons = [
        ("deep page vs first page (contract: ≈ 1)", "deep", "first"),
        (f"deep page vs page 2 (cursor after {plan.page_size}): depth alone, ≈ 1", "deep", "page2"),
        ("page 2 vs first page: the price of using a cursor", "page2", "first"),
        ("GET one todo vs GET /healthz: the database path", "get", "healthz"),
        ("first page vs GET one todo: 20 rows instead of 1", "first", "get"),
        ("POST vs GET one todo: a committed write instead of a read", "post", "get"),
        (
            f"GET /healthz, LOG_LEVEL=INFO vs WARNING ({log_bytes:.0f} log bytes/request)",
            "healthz",
            "healthz_warning",
        ),
        ("first page, LOG_LEVEL=INFO vs WARNING", "first", "first_warning"),
        ("GET one todo, LOG_LEVEL=INFO vs WARNING", "get", "get_warning"),
        (
            f"bare Flask, gunicorn's access line vs none ({bare_bytes:.0f} log bytes/request)",
            "healthz_bare_log",
            "healthz_bare",
        ),
        (
            "SQLAlchemy app (GET one todo), access line vs none",
            "get_sqlalchemy_log",
            "get_sqlalchemy",
        ),
    ]
    ratio_rows = [
        [label, paired(runs, a, b, "rps"), paired(runs, a, b, "service_cpu_us")]
        for label, a, b in comparisons
    ]
    add(table(["comparison", "throughput ratio", "cost ratio"], ratio_rows))
    add("")
    add(
        f"With LOG_LEVEL=WARNING the twin wrote {web['warning_log_lines']} log lines in all "
        "its runs (access lines are INFO). The baseline against each of the limits is in the "
        "limits table at the top."
    )
    add("")
    out.extend(incident_lines(web["incidents"]))
    return out
