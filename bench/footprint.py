"""Start-up and stop (phase 5), and the memory and start-up sections of the report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from . import procs
from .bakes import Bake
from .plan import Plan, progress
from .report import fmt, spread, table
from .servers import launch_baseline, launch_web

# What each process of the start-up phase and of the memory table is.
STARTED = {"baked": "web line", "sqlalchemy": "SQLAlchemy app +log", "bare": "bare Flask +log"}
PROCESSES = {
    "baked": "web line (LOG_LEVEL=INFO)",
    "baked_warning": "web line (LOG_LEVEL=WARNING)",
    "bare": "bare Flask",
    "bare_log": "bare Flask +log",
    "pooled": "Flask + pooled psycopg2",
    "pooled_log": "Flask + pooled psycopg2 +log",
    "sqlalchemy": "SQLAlchemy app",
    "sqlalchemy_log": "SQLAlchemy app +log",
}


def measure_startup(plan: Plan, b: Bake, logs: Path) -> dict[str, list[float]]:
    """Process start to first 200 on /healthz, then SIGTERM to every process gone (drain off,
    nothing in flight): the web line as it ships (LOG_LEVEL=INFO), the SQLAlchemy app and bare
    Flask (both +log), in turn, backwards every other time. Stop times are under
    "<name> stop"."""
    launchers = {
        "baked": lambda: launch_web(b, logs, "web-startup", LOG_LEVEL="INFO"),
        "sqlalchemy": lambda: launch_baseline(b, logs, "sqlalchemy_app", access_log=True),
        "bare": lambda: launch_baseline(b, logs, "bare", access_log=True),
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
            f"start-up {rep + 1}/{plan.startup_reps}: "
            + ", ".join(
                f"{STARTED[name]} {times[name][-1]:.3f} s (stop {times[f'{name} stop'][-1]:.3f} s)"
                for name in launchers
            )
        )
    return times


def mib(kib: int | None) -> str:
    """KiB as MiB for a table cell; '-' when unknown."""
    return fmt(kib / 1024) if kib else "-"


def render_footprint(results: dict[str, Any]) -> list[str]:
    """Memory of every measured process, and start-up times."""
    out: list[str] = []
    add = out.append
    add("## Memory (VmRSS now, VmHWM peak, PSS and USS now)")
    add("")
    rows = []
    for name, entry in results["web"]["memory_kib"].items():
        rows.append([f"{PROCESSES[name]}: gunicorn master", mib(entry["master_rss_kib"])])
        rows[-1] += ["-", "-", "-"]
        count = len(entry["worker_rss_kib"])
        columns = [
            entry["worker_rss_kib"],
            entry["worker_peak_kib"],
            entry.get("worker_pss_kib") or [None] * count,
            entry.get("worker_uss_kib") or [None] * count,
        ]
        for n, values in enumerate(zip(*columns, strict=False), 1):
            rows.append([f"{PROCESSES[name]}: worker {n}", *(mib(kib) for kib in values)])
    worker = results.get("worker") or {}
    for name, kib in worker.get("memory_kib", {}).items():
        rows.append([name, mib(kib), "-", "-", "-"])
    add(table(["process", "RSS MiB", "peak MiB", "PSS MiB", "USS MiB"], rows))
    add("")
    add(
        "Gunicorn figures are after the web load and the connection sweep; celery figures "
        "after a 1-process drain. Forked workers share pages with their master, so sums of "
        "RSS overstate what the processes use together; PSS splits each shared page among "
        "the processes sharing it, and USS counts only the pages no other process shares."
    )
    add("")
    add("## Start-up (process start → first 200 on /healthz) and stop (SIGTERM → all gone)")
    add("")
    startup = results["startup_s"]
    rows = []
    for what in ("start", "stop"):
        for name, label in STARTED.items():
            key = name if what == "start" else f"{name} stop"
            rows.append([f"{label}, {what}, s", *spread(startup[key], 3)])
    add(table(["process", "median", "min", "max", "runs"], rows))
    add("")
    add(
        "All three under gunicorn as in the web section; the baselines with `-w 2 -k sync` "
        "and the access line on, the web line at LOG_LEVEL=INFO."
    )
    add("")
    return out
