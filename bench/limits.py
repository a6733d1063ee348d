"""The baked service against the least one could write (issue 10): throughput of
`GET /healthz` and `GET /api/todos/<id>` against the baselines, start-up and memory
against bare Flask, each as a ratio with its target."""

from __future__ import annotations

import operator
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import procs
from .bakes import Bake
from .plan import Plan, progress
from .report import fmt, median, ratio, span, spread, table
from .servers import launch_baseline, launch_web

# (figure, what the baked service is compared with, comparison, target ratio)
Target = tuple[str, str, Callable[[float, float], bool], float]
HEALTHZ: Target = ("`GET /healthz`, req/s", "bare Flask returning a constant", operator.ge, 0.95)
GET_ONE: Target = (
    "`GET /api/todos/<id>`, req/s",
    "Flask + pooled psycopg2, same SELECT",
    operator.ge,
    0.80,
)
STARTUP: Target = ("start → first 200, s", "bare Flask", operator.le, 1.5)
MEMORY: Target = ("peak RSS per worker, MiB", "bare Flask", operator.le, 1.6)
# Not a target: what a worker costs the machine once the pages it shares are split.
SHARED_MEMORY = ("PSS per worker, MiB", "bare Flask")


def measure_startup(plan: Plan, b: Bake, logs: Path) -> dict[str, list[float]]:
    """Process start to first 200 on /healthz, then SIGTERM to every process gone (drain off,
    nothing in flight): the web line and bare Flask, alternating. Stop times are under
    "<name> stop"."""
    launchers = {
        "baked": lambda: launch_web(b, logs, "web-startup"),
        "bare": lambda: launch_baseline(b, logs, "bare"),
    }
    times: dict[str, list[float]] = {
        key: [] for name in launchers for key in (name, f"{name} stop")
    }
    for rep in range(plan.startup_reps):
        names = list(launchers) if rep % 2 == 0 else list(launchers)[::-1]
        for name in names:
            proc = launchers[name]()
            try:
                times[name].append(procs.wait_for_200(proc, deadline=60))
            finally:
                told = time.monotonic()
                procs.stop(proc)
                times[f"{name} stop"].append(time.monotonic() - told)
        progress(
            f"start-up {rep + 1}/{plan.startup_reps}: web line {times['baked'][-1]:.3f} s "
            f"(stop {times['baked stop'][-1]:.3f} s), bare Flask {times['bare'][-1]:.3f} s "
            f"(stop {times['bare stop'][-1]:.3f} s)"
        )
    return times


def verdict(target: Target, value: float) -> list[str]:
    """The target and whether the ratio meets it."""
    _, _, compare, bound = target
    sign = "≥" if compare is operator.ge else "≤"
    met = "-" if value != value else "yes" if compare(value, bound) else "**no**"
    return [f"{sign} {bound:.2f}", met]


def limit_rows(results: dict[str, Any]) -> list[list[str]]:
    """One row per figure: baked, limit, ratio of medians, range, target, met."""
    runs = results["web"]["runs"]
    rows = []
    for target, key, base in ((HEALTHZ, "healthz", "healthz_bare"), (GET_ONE, "get", "get_pooled")):
        baked = [r["rps"] for r in runs[key]]
        limit = [r["rps"] for r in runs[base]]
        headline = ratio(median(baked), median(limit))
        same_round = [ratio(a, b) for a, b in zip(baked, limit, strict=False)]
        rows.append(
            [
                target[0],
                target[1],
                fmt(median(baked), 0),
                fmt(median(limit), 0),
                fmt(headline, 2),
                span(same_round),
                *verdict(target, headline),
            ]
        )
    startup = results["startup_s"]
    headline = ratio(median(startup["baked"]), median(startup["bare"]))
    pairs = [ratio(a, b) for a, b in zip(startup["baked"], startup["bare"], strict=False)]
    rows.append(
        [
            STARTUP[0],
            STARTUP[1],
            fmt(median(startup["baked"]), 3),
            fmt(median(startup["bare"]), 3),
            fmt(headline, 2),
            span(pairs),
            *verdict(STARTUP, headline),
        ]
    )
    memory = results["web"]["memory_kib"]
    baked_peaks = [kib / 1024 for kib in memory["baked"]["worker_peak_kib"]]
    bare_peaks = [kib / 1024 for kib in memory["bare"]["worker_peak_kib"]]
    headline = ratio(median(baked_peaks), median(bare_peaks))
    extremes = [ratio(min(baked_peaks), max(bare_peaks)), ratio(max(baked_peaks), min(bare_peaks))]
    rows.append(
        [
            MEMORY[0],
            MEMORY[1],
            fmt(median(baked_peaks), 1),
            fmt(median(bare_peaks), 1),
            fmt(headline, 2),
            span(extremes),
            *verdict(MEMORY, headline),
        ]
    )
    baked_pss = [kib / 1024 for kib in memory["baked"].get("worker_pss_kib", []) if kib]
    bare_pss = [kib / 1024 for kib in memory["bare"].get("worker_pss_kib", []) if kib]
    if baked_pss and bare_pss:
        extremes = [ratio(min(baked_pss), max(bare_pss)), ratio(max(baked_pss), min(bare_pss))]
        rows.append(
            [
                *SHARED_MEMORY,
                fmt(median(baked_pss), 1),
                fmt(median(bare_pss), 1),
                fmt(ratio(median(baked_pss), median(bare_pss)), 2),
                span(extremes),
                "-",
                "-",
            ]
        )
    return rows


def render_limits(plan: Plan, results: dict[str, Any]) -> list[str]:
    """The limits section: four ratios with their targets, then the latencies."""
    out: list[str] = []
    add = out.append
    add("## Limits: the baked service against the least one could write")
    add("")
    add(
        "Each figure as a ratio to its limit (`bench/baselines/`: the same gunicorn settings, "
        "interpreter and database, interleaved with the baked service in the same rounds). "
        "*Ratio* divides the medians; *range* spans the ratios of runs from the same "
        f"round ({plan.web_reps} round(s)), of start-ups next to each other "
        f"({plan.startup_reps} pair(s)), and for memory the extremes over the workers. "
        "Throughput is above 1 when the baked service is faster; start-up and memory are "
        "above 1 when it is slower or bigger. PSS (proportional set size) splits each page "
        "a worker shares with its master among the processes sharing it: the web line's "
        "master imports the app before forking (`preload_app`), bare Flask's workers each "
        "import their own, so PSS is what a further worker costs the machine."
    )
    add("")
    headers = ["figure", "limit", "baked", "limit's", "ratio", "range", "target", "met"]
    add(table(headers, limit_rows(results), numeric_from=2, numeric_to=6))
    add("")
    runs = results["web"]["runs"]
    rows = []
    for target, key, base in ((HEALTHZ, "healthz", "healthz_bare"), (GET_ONE, "get", "get_pooled")):
        cells = [target[0].split(",")[0]]
        for measure, digits in (("p50_ms", 2), ("p99_ms", 2), ("service_cpu_us", 0)):
            cells += [
                fmt(median(r[measure] for r in runs[key]), digits),
                fmt(median(r[measure] for r in runs[base]), digits),
            ]
        cpu = [r["service_cpu_us"] for r in runs[key]]
        limit_cpu = [r["service_cpu_us"] for r in runs[base]]
        same_round = [ratio(a, b) for a, b in zip(cpu, limit_cpu, strict=False)]
        rows.append([*cells, fmt(ratio(median(cpu), median(limit_cpu)), 2), span(same_round)])
    headers = ["request", "baked p50 ms", "limit p50 ms", "baked p99 ms", "limit p99 ms"]
    headers += ["baked CPU µs", "limit CPU µs", "CPU ratio", "range"]
    add(table(headers, rows))
    add("")
    add(
        "Latencies are the medians over the runs of each run's percentile, at "
        f"{plan.wrk_connections} connections on 2 workers (mostly time in the queue). "
        "CPU µs is the CPU time per request of the gunicorn processes and their PostgreSQL "
        "backends (median over the runs): other load on the machine slows a run down but "
        "hardly changes it, so on a busy machine its ratio (baked over limit, above 1 when "
        "the baked service is dearer) is the steadier reading of the same cost. The "
        "throughput targets correspond to CPU ratios of at most "
        f"{1 / HEALTHZ[3]:.2f} and {1 / GET_ONE[3]:.2f}."
    )
    add("")
    return out


def render_footprint(results: dict[str, Any]) -> list[str]:
    """Memory of every measured process, and start-up times."""
    out: list[str] = []
    add = out.append
    add("## Memory (VmRSS now, VmHWM peak, PSS now)")
    add("")
    names = {
        "baked": "web line",
        "bare": "bare Flask",
        "pooled": "Flask + pooled psycopg2",
    }
    rows = []
    for name, entry in results["web"]["memory_kib"].items():
        rows.append(
            [
                f"{names[name]}: gunicorn master",
                fmt((entry["master_rss_kib"] or 0) / 1024),
                "-",
                "-",
            ]
        )
        pss = entry.get("worker_pss_kib") or [None] * len(entry["worker_rss_kib"])
        for n, (now, peak, shared) in enumerate(
            zip(entry["worker_rss_kib"], entry["worker_peak_kib"], pss, strict=False), 1
        ):
            rows.append(
                [
                    f"{names[name]}: worker {n}",
                    fmt((now or 0) / 1024),
                    fmt(peak / 1024),
                    fmt(shared / 1024) if shared else "-",
                ]
            )
    worker = results.get("worker") or {}
    for name, kib in worker.get("memory_kib", {}).items():
        rows.append([name, fmt((kib or 0) / 1024), "-", "-"])
    add(table(["process", "RSS MiB", "peak MiB", "PSS MiB"], rows))
    add("")
    add(
        "Gunicorn figures are after the web load and the connection sweep; celery figures "
        "after a 1-process drain. Forked workers share pages with their master, so sums "
        "overstate what the processes use together."
    )
    add("")
    add("## Start-up (process start → first 200 on /healthz) and stop (SIGTERM → all gone)")
    add("")
    startup = results["startup_s"]
    rows = [
        ["web line, start, s", *spread(startup["baked"], 3)],
        ["bare Flask (same gunicorn settings), start, s", *spread(startup["bare"], 3)],
        ["web line, stop, s", *spread(startup["baked stop"], 3)],
        ["bare Flask, stop, s", *spread(startup["bare stop"], 3)],
    ]
    add(table(["process", "median", "min", "max", "runs"], rows))
    add("")
    return out
