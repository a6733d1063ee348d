"""Phase 2b, observability: the observability=opentelemetry bake against the default bake.

Both `web` lines run side by side, against the same database: the default bake, and the
opentelemetry bake with traces on at a 10% ratio sampler exporting over OTLP/HTTP to a
local sink (otlpsink.py, which answers 200 to every POST), metrics on at /metrics, and
Sentry off. wrk rounds over `GET /healthz` and `GET /api/todos/<id>`, each run of one bake
next to the same run of the other, every other round backwards, as in web.py.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from . import procs
from .bakes import Bake
from .load import Loader
from .plan import BENCH_DIR, Plan, progress
from .report import fmt, incident_lines, median, spread, table
from .servers import Scenario, WebServer, launch_web, ready_all, stop_all
from .sql import SqlPipe
from .web import paired

SAMPLER = "parentbased_traceidratio"
SAMPLER_ARG = "0.1"
# The share of throughput the option may cost at that sampler.
TARGET_COST = 0.10
# Bound on the sink's life, whatever happens to the bench.
SINK_LIFETIME_S = 3600
SCENARIO_KEYS = ("healthz", "get")
# The opentelemetry bake twice: as configured (traces and metrics), and with its metrics off,
# to show how the cost splits between the two signals.
SERVERS = ("none", "opentelemetry", "traces")
# Seconds to wait for the workers' last counts: a few of their one-second writes.
COUNT_WAIT_S = 5
# Seconds to wait for the first export: the SDK's batch delay (OTEL_BSP_SCHEDULE_DELAY,
# 5 s by default) and a margin. A short run may end before any batch has left.
EXPORT_WAIT_S = 7
COUNTED = re.compile(r"^http_requests_total\{[^}]*\} ([0-9.e+]+)$", re.MULTILINE)


def start_sink(logs: Path) -> procs.Proc:
    """The OTLP/HTTP sink on a free port of 127.0.0.1, run by the harness's interpreter."""
    port = procs.free_port()
    interpreter = Path(sys.executable)
    env = procs.clean_environment(extra_path=str(interpreter.parent))
    proc = procs.start(
        "otlp-sink",
        [interpreter.name, str(BENCH_DIR / "otlpsink.py"), str(port), str(SINK_LIFETIME_S)],
        cwd=BENCH_DIR,
        env=env,
        log_path=logs / f"otlp-sink-{port}.log",
        port=port,
    )
    procs.wait_for_200(proc, "/stats")
    return proc


def sink_stats(sink: procs.Proc) -> dict[str, Any]:
    """What the sink has received so far."""
    status, body = procs.http_request("GET", sink.port or 0, "/stats")
    if status != 200:
        raise RuntimeError(f"the OTLP sink answered {status} to GET /stats")
    return dict(json.loads(body))


def exported(sink: procs.Proc) -> dict[str, Any]:
    """What the sink has received, once it has received something, or as it stands after
    EXPORT_WAIT_S. Asked while the servers still run, since only the scheduled exports
    arrive: a gevent worker's last batch, sent from an exit handler, fails with "can't create
    new thread at interpreter shutdown" (seen with the web line on Python 3.12)."""
    stop_at = time.monotonic() + EXPORT_WAIT_S
    spans = sink_stats(sink)
    while not spans["posts"] and time.monotonic() < stop_at:
        time.sleep(0.2)
        spans = sink_stats(sink)
    return spans


def counted_requests(port: int, sent: int) -> float:
    """The sum of http_requests_total over every route and status, from GET /metrics, once
    it has counted what was sent (each worker writes its counts once a second), or as it
    stands after COUNT_WAIT_S."""
    stop_at = time.monotonic() + COUNT_WAIT_S
    while True:
        status, body = procs.http_request("GET", port, "/metrics")
        if status != 200:
            raise RuntimeError(f"GET /metrics answered {status}")
        counted = sum(float(value) for value in COUNTED.findall(body.decode()))
        if counted >= sent or time.monotonic() > stop_at:
            return counted
        time.sleep(0.2)


def measure_observability(
    plan: Plan,
    loader: Loader,
    pipe: SqlPipe,
    default: Bake,
    traced: Bake,
    logs: Path,
    scenarios: list[Scenario],
) -> dict[str, Any]:
    """Interleaved wrk rounds of the two bakes over /healthz and GET one todo."""
    by_key = {s.key: s for s in scenarios}
    chosen = [by_key[key] for key in SCENARIO_KEYS]
    sink = start_sink(logs)
    incidents: list[str] = []
    settings = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink.port}",
        "OTEL_TRACES_SAMPLER": SAMPLER,
        "OTEL_TRACES_SAMPLER_ARG": SAMPLER_ARG,
        "METRICS_ENABLED": "true",
        "SENTRY_DSN": "",
    }
    servers = {
        "none": WebServer(
            "obs-none", lambda: launch_web(default, logs, "obs-none"), incidents, wait=False
        ),
        "opentelemetry": WebServer(
            "obs-otel",
            # The same database as the default bake's, so both read the same cached pages.
            lambda: launch_web(traced, logs, "obs-otel", DATABASE_URL=default.url, **settings),
            incidents,
            wait=False,
        ),
        "traces": WebServer(
            "obs-traces",
            lambda: launch_web(
                traced,
                logs,
                "obs-traces",
                DATABASE_URL=default.url,
                **{**settings, "METRICS_ENABLED": "false"},
            ),
            incidents,
            wait=False,
        ),
    }
    runs: dict[str, list[dict[str, Any]]] = {
        f"{s.key}_{name}": [] for s in chosen for name in SERVERS
    }
    try:
        ready_all(list(servers.values()))
        progress(
            f"observability: none on :{servers['none'].port}, opentelemetry on "
            f":{servers['opentelemetry'].port}, its traces alone on :{servers['traces'].port}, "
            f"OTLP sink on :{sink.port}"
        )
        for server in servers.values():
            server.warm(chosen)
        if procs.http_request("GET", servers["none"].port, "/metrics")[0] != 404:
            raise RuntimeError("the default bake serves /metrics")
        order = [(s, name) for s in chosen for name in SERVERS]

        def pids_of(server: WebServer) -> Callable[[], dict[str, set[int]]]:
            """The server under load (its master and workers) and the database's backends."""

            def pids() -> dict[str, set[int]]:
                rows = pipe.sql(
                    default.label,
                    default.url,
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s",
                    [default.database],
                )
                return {
                    "web": set(procs.group_members(server.proc.pid)),
                    "postgres": {int(row[0]) for row in rows},
                }

            return pids

        for round_no in range(plan.web_reps):
            for scenario, name in order if round_no % 2 == 0 else order[::-1]:
                label = f"{scenario.label} [observability={name}]"
                with procs.CpuMeter(pids_of(servers[name])) as cpu:
                    result = servers[name].run(label, lambda p, s=scenario: loader.run(p, s))
                requests = max(result.requests, 1)
                runs[f"{scenario.key}_{name}"].append(
                    {
                        **asdict(result),
                        "ours_cpu_pct": cpu.ours_pct,
                        "others_cpu_pct": cpu.others_pct,
                        "service_cpu_us": 1e6
                        * (cpu.seconds.get("web", 0.0) + cpu.seconds.get("postgres", 0.0))
                        / requests,
                    }
                )
                progress(
                    f"observability round {round_no + 1}/{plan.web_reps} {label}: "
                    f"{result.rps:,.0f} req/s p50 {result.p50_ms:.2f} ms errors {result.errors}"
                )
        sent = sum(
            r["requests"] for key, rs in runs.items() if key.endswith("_opentelemetry") for r in rs
        )
        counted = counted_requests(servers["opentelemetry"].port, sent)
        spans = exported(sink)
    finally:
        stop_all(list(servers.values()))
    procs.stop(sink)
    progress(f"observability done; the sink received {spans}; /metrics counted {counted:.0f}")
    return {
        "scenarios": [asdict(s) for s in chosen],
        "runs": runs,
        "sink": spans,
        "requests_sent_to_traced": sent,
        "requests_counted_by_metrics": counted,
        "incidents": incidents,
    }


def render_observability(plan: Plan, o: dict[str, Any]) -> list[str]:
    """The observability section: both bakes' throughput, their ratio against the target."""
    out: list[str] = []
    add = out.append
    runs = o["runs"]
    labels = {s["key"]: s["label"] for s in o["scenarios"]}
    add(
        "## Observability: observability=opentelemetry bake against the default bake, "
        f"traces at a {float(SAMPLER_ARG):.0%} sampler"
    )
    add("")
    add(
        f"Both `web` lines as in the web section, against the same database, {plan.web_reps} "
        f"run(s) of {plan.duration:g} s per row, each next to its twin, backwards every other "
        f"round. The opentelemetry bake runs with OTEL_TRACES_SAMPLER={SAMPLER}, "
        f"OTEL_TRACES_SAMPLER_ARG={SAMPLER_ARG}, OTEL_EXPORTER_OTLP_ENDPOINT at a local sink "
        "that answers 200 to every POST (`bench/otlpsink.py`), METRICS_ENABLED=true (every "
        "request counted in the multiprocess folder) and SENTRY_DSN empty. `/healthz` is "
        "never traced (probes are excluded), so its row is the cost of the metrics and of the "
        "tracing middleware's look at the path alone. *traces* is the same bake with "
        "METRICS_ENABLED=false, run in the same rounds: what tracing costs by itself."
    )
    add("")
    rows = []
    for key, values in runs.items():
        scenario, _, name = key.partition("_")
        rows.append(
            [
                f"{labels[scenario]} [{name}]",
                *spread([r["rps"] for r in values], 0),
                fmt(median(r["p50_ms"] for r in values), 2),
                fmt(median(r["p99_ms"] for r in values), 2),
                fmt(sum(r["errors"] for r in values)),
                fmt(median(r["service_cpu_us"] for r in values), 0),
            ]
        )
    headers = ["scenario", "req/s median", "min", "max", "runs", "p50 ms", "p99 ms", "errors"]
    add(table([*headers, "web + postgres µs/request"], rows))
    add("")
    ratio_rows = []
    # The option as configured is held to the target; its traces alone show their share.
    for name, held in (("opentelemetry", True), ("traces", False)):
        for key in labels:
            top, bottom = f"{key}_{name}", f"{key}_none"
            if not runs.get(top):
                continue
            rps_ratio = median(r["rps"] for r in runs[top]) / median(r["rps"] for r in runs[bottom])
            lost = 1 - rps_ratio
            ratio_rows.append(
                [
                    f"{labels[key]}: {'opentelemetry' if held else 'its traces alone'} vs none",
                    paired(runs, top, bottom, "rps"),
                    paired(runs, top, bottom, "service_cpu_us"),
                    fmt(100 * lost, 1),
                    f"< {100 * TARGET_COST:.0f}" if held else "",
                    ("yes" if lost < TARGET_COST else "**no**") if held else "",
                ]
            )
    add(
        table(
            [
                "comparison",
                "throughput ratio",
                "cost ratio",
                "throughput lost, %",
                "target",
                "met",
            ],
            ratio_rows,
            numeric_to=4,
        )
    )
    add("")
    add(
        "Ratios as in the web section: of the medians, and in brackets the median of "
        "same-round ratios; *throughput lost* is 1 minus the ratio of the medians. "
        f"The sink received {o['sink']['posts']:,} export POSTs ({o['sink']['bytes']:,} bytes) "
        f"and /metrics counted {o['requests_counted_by_metrics']:,.0f} requests, against "
        f"{o['requests_sent_to_traced']:,} sent by the load generator to the traced bake "
        "(the rest are warm-up requests)."
    )
    add("")
    out.extend(incident_lines(o["incidents"]))
    return out
