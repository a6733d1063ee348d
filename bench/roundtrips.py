"""Phase 3, round trips: the queries each request sends to PostgreSQL, counted through a
proxy, and what the extra ones cost, replayed straight on psycopg2."""

from __future__ import annotations

import time
import urllib.parse
from pathlib import Path
from typing import Any

from . import procs
from .bakes import Bake
from .dbproxy import CountingProxy
from .plan import Plan, progress
from .report import fmt, median, ratio, table
from .servers import Scenario, start_web
from .sql import SqlPipe, database_url

# The replay of one read's statements: alternating short runs; the minimum is quoted,
# since noise on a shared machine only ever adds time.
REPLAY_REPS, REPLAY_SECONDS = 6, 0.25


def measure_roundtrips(
    plan: Plan, pipe: SqlPipe, b: Bake, logs: Path, scenarios: list[Scenario]
) -> dict[str, Any]:
    """Queries sent to PostgreSQL per request, through the counting proxy; then what
    the observed sequence of a read costs against its one SELECT, replayed directly."""
    parts = urllib.parse.urlsplit(b.url)
    proxy = CountingProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    direct = urllib.parse.urlsplit(database_url(b.url, b.database, sslmode="disable"))
    credentials = direct.netloc.rpartition("@")[0]
    netloc = (f"{credentials}@" if credentials else "") + f"127.0.0.1:{proxy.port}"
    proxied = Bake(
        b.label,
        b.path,
        b.database,
        urllib.parse.urlunsplit(direct._replace(netloc=netloc)),
        b.secret,
        b.celery,
    )
    out: dict[str, Any] = {"per_request": {}, "sequences": {}}
    web = None
    try:
        web = start_web(proxied, logs, "web-proxied", WEB_CONCURRENCY="1")
        n = plan.roundtrip_requests
        for scenario in scenarios:
            payload = {"title": "round trip", "done": False} if scenario.method == "POST" else None
            for _ in range(3):
                procs.http_request(scenario.method, web.port, scenario.path, payload)
            time.sleep(0.05)
            proxy.reset()
            for _ in range(n):
                procs.http_request(scenario.method, web.port, scenario.path, payload)
            time.sleep(0.1)
            counts, queries = proxy.snapshot()
            out["per_request"][scenario.key] = {kind: count / n for kind, count in counts.items()}
            per = len(queries) // n if n else 0
            out["sequences"][scenario.key] = queries[:per]
        progress(
            "round trips per request: "
            + ", ".join(f"{k} {v.get('Q', 0):g}" for k, v in out["per_request"].items())
        )
    finally:
        if web is not None:
            procs.stop(web)
        proxy.close()

    sequence = out["sequences"].get("get", [])
    main = [q for q in sequence if q.upper().startswith("SELECT") and "todos" in q]
    # Replayed only when there is something besides the SELECT to price.
    if main and len(main) < len(sequence) <= 10:
        timings: dict[str, list[float]] = {"sequence": [], "select_only": []}
        cpu: dict[str, list[float]] = {"sequence": [], "select_only": []}
        backend = int(pipe.sql("replay", b.url, "SELECT pg_backend_pid()")[0][0])
        for _ in range(REPLAY_REPS):
            for key, statements in (("sequence", sequence), ("select_only", main)):
                server_before = procs.process_cpu(backend) or 0.0
                answer = pipe.ask(
                    {
                        "op": "replay",
                        "conn": "replay",
                        "url": b.url,
                        "statements": statements,
                        "seconds": REPLAY_SECONDS,
                        "max_loops": 20_000,
                    }
                )
                server_us = 1e6 * ((procs.process_cpu(backend) or 0.0) - server_before)
                timings[key].append(answer["us_per_loop"])
                loops = max(int(answer["loops"]), 1)
                cpu[key].append(answer["client_cpu_us_per_loop"] + server_us / loops)
        pipe.ask({"op": "close", "conn": "replay"})
        out["replay_us"] = timings
        out["replay_cpu_us"] = cpu
        progress(
            f"replayed read: {min(timings['sequence']):.0f} us for the observed "
            f"sequence vs {min(timings['select_only']):.0f} us for its SELECT alone (best runs)"
        )
    return out


def render_roundtrips(rt: dict[str, Any], web: dict[str, Any]) -> list[str]:
    """The round-trips section, with the price of the extra ones under load."""
    out: list[str] = []
    add = out.append
    labels, runs = web["labels"], web["runs"]

    add("## Database round trips per request (counting proxy, 1 worker, sequential)")
    add("")
    rows = []
    for key, counts in rt["per_request"].items():
        sequence = rt["sequences"].get(key, [])
        shown = (
            "; ".join(f"`{q[:40]}`" for q in sequence)
            if len(sequence) <= 6
            else f"{len(sequence)} statements"
        )
        rows.append([labels[key], fmt(counts.get("Q", 0.0), 1), shown or "-"])
    add(
        table(
            ["scenario", "queries (round trips) per request", "what one request sends"],
            rows,
            numeric_to=2,
        )
    )
    add("")
    if "replay_us" in rt:
        seq, one = min(rt["replay_us"]["sequence"]), min(rt["replay_us"]["select_only"])
        seq_cpu = min(rt["replay_cpu_us"]["sequence"])
        one_cpu = min(rt["replay_cpu_us"]["select_only"])
        get_cpu = median(r["service_cpu_us"] for r in runs["get"])
        # Two workers share the median rate.
        per_request_us = 1e6 * 2 / median(r["rps"] for r in runs["get"])
        cpu_share = fmt(100 * ratio(seq_cpu - one_cpu, get_cpu), 0)
        time_share = fmt(100 * ratio(seq - one, per_request_us), 0)
        add(
            "Price of the extra round trips: one read's observed sequence, replayed "
            "straight on psycopg2 (no web, no ORM; best of "
            f"{len(rt['replay_us']['sequence'])} runs), takes {seq:.0f} µs of wall time "
            f"and {seq_cpu:.0f} µs of CPU (client and server) against {one:.0f} µs and "
            f"{one_cpu:.0f} µs for its SELECT alone. Under load, GET one todo costs "
            f"{get_cpu:,.0f} µs of CPU per request (web + postgres) and a worker spends "
            f"{per_request_us:,.0f} µs of wall time per request (2 workers at the median "
            f"rate), so the extra round trips are {cpu_share}% of its CPU and "
            f"{time_share}% of its time."
        )
        add("")
    elif rt["sequences"].get("get"):
        add(
            "GET one todo sends its SELECT alone: no BEGIN, ROLLBACK or liveness ping, so no "
            "extra round trip to price."
        )
        add("")
    return out
