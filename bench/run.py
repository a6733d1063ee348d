"""`make bench`: bake, install and measure the template's two main bakes side by side.

Phases, each bounded in requests and time (README.md tells what each measures):
  1. bake the default, the worker=celery and the observability=opentelemetry projects;
     `make install` in each; one fresh PostgreSQL database per bake, migrated by the
     Procfile's release line (bakes.py);
  2. web: wrk rounds over six scenarios at LOG_LEVEL=INFO, the LOG_LEVEL=WARNING twins and
     the baselines with and without an access line, interleaved; GET one todo at 1 to 128
     connections; memory (web.py, growth.py); then
     the opentelemetry bake (traces at 10%, metrics on) against the default one, on
     /healthz and GET one todo, interleaved (observability.py);
  3. database round trips per request through a counting proxy (roundtrips.py), and
     where the time of a request and of the import goes, profiled (profiles.py);
  4. paging in tables of growing size (growth.py);
  5. start-up of the web line against the SQLAlchemy app and bare Flask (footprint.py),
     then what it is made of, library by library, counted in instructions (startwork.py);
  6. worker (celery bake): archive tasks drained by 1 vs 2 processes (worker.py);
  7. the newcomer's clock: bake, and bake to first 200 with uv and with pip (newcomer.py);
then the Markdown report on stdout and in build/bench/latest.md (raw runs in latest.json).
Progress lines go to stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from . import procs
from .bakes import Bake, bake, make_install, run_release
from .footprint import measure_startup, render_footprint
from .growth import measure_growth, render_growth
from .limits import render_limits
from .load import Loader
from .newcomer import measure_newcomer, render_newcomer
from .observability import measure_observability, render_observability
from .plan import (
    DEFAULT_DATABASE_URL,
    REDIS_DB,
    REDIS_HOST,
    REDIS_PORT,
    RESULTS_DIR,
    T0,
    Plan,
    progress,
)
from .profiles import measure_profiles, render_profiles
from .report import table
from .roundtrips import measure_roundtrips, render_roundtrips
from .servers import Scenario
from .sql import SqlPipe
from .startwork import measure_startup_work, render_startup_work
from .web import measure_web, render_web
from .worker import measure_worker, render_worker


def machine_facts(loader: Loader, pipe: SqlPipe, bakes: list[Bake]) -> dict[str, str]:
    """What the figures were measured on."""
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    baked_python = subprocess.run(  # noqa: S603
        [str(bakes[0].bin / "python"), "--version"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    ).stdout.strip()
    redis_info = str(procs.redis_command(REDIS_HOST, REDIS_PORT, REDIS_DB, "INFO", "server"))
    redis_version = next(
        (
            line.split(":", 1)[1].strip()
            for line in redis_info.splitlines()
            if line.startswith("redis_version:")
        ),
        "?",
    )
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "kernel": platform.release(),
        "harness Python": platform.python_version(),
        "baked projects' Python": baked_python.removeprefix("Python "),
        "PostgreSQL": str(pipe.sql("admin", pipe.admin_url, "SHOW server_version")[0][0]),
        "Redis": redis_version,
        "load generator": loader.name,
    }


def measure(
    plan: Plan,
    admin_url: str,
    work: Path,
    logs: Path,
    results: dict[str, Any],
    pipes: list[SqlPipe],
) -> None:
    """Every phase, in order; results are filled in as they come, and the SQL pipe (which
    drops the databases at the end) is put in pipes as soon as it exists."""
    try:
        procs.redis_command(REDIS_HOST, REDIS_PORT, REDIS_DB, "PING")
    except OSError as error:
        raise RuntimeError(
            f"Redis does not answer on {REDIS_HOST}:{REDIS_PORT} ({error}): start it there; "
            "the worker phase needs it"
        ) from None
    loader = Loader(plan)
    progress(f"load generator: {loader.name}")
    bakes = [
        bake(work, "default", {}),
        bake(work, "celery", {"worker": "celery"}),
        bake(work, "otel", {"observability": "opentelemetry"}),
    ]
    progress(
        "baked the default, the worker=celery and the observability=opentelemetry projects; "
        "make install in each"
    )
    make_install(bakes, logs)
    progress("installed")
    pipe = SqlPipe(str(bakes[0].bin / "python"), admin_url)
    pipes.append(pipe)
    prefix = f"bench_{secrets.token_hex(4)}"
    for b in bakes:
        b.database = f"{prefix}_{b.label}"
        b.url = pipe.create_database(b.database)
        progress(f"database {b.database}: release line took {run_release(b, logs):.2f} s")
    results["facts"] = machine_facts(loader, pipe, bakes)

    default, celery, traced = bakes
    results["web"] = measure_web(plan, loader, pipe, default, logs)
    scenarios = [Scenario(**s) for s in results["web"]["scenarios"]]
    results["observability"] = measure_observability(
        plan, loader, pipe, default, traced, logs, scenarios
    )
    results["roundtrips"] = measure_roundtrips(plan, pipe, default, logs, scenarios)
    get_path = next(s.path for s in scenarios if s.key == "get")
    results["profiles"] = {"get_path": get_path, **measure_profiles(plan, default, get_path)}
    results["growth"] = measure_growth(
        plan, loader, pipe, default, logs, results["web"]["incidents"]
    )
    results["startup_s"] = measure_startup(plan, default, logs)
    results["startup_work"] = measure_startup_work(plan, default)
    results["worker"] = measure_worker(plan, pipe, celery, logs)
    results["newcomer"] = measure_newcomer(plan, pipe, prefix, work, logs)


def render(plan: Plan, results: dict[str, Any]) -> str:
    """The Markdown report."""
    title = "# Benchmark of the baked services"
    out = [title + ("" if plan.mode == "full" else f" (BENCH_QUICK, {plan.mode} plan)"), ""]
    out.append(
        f"{results['finished']}; total wall time {results['wall_s']:.0f} s. "
        "Medians of interleaved runs in one session; compare ratios, not absolute numbers, "
        "across machines."
    )
    out.append("")
    out.append(table(["fact", "value"], list(results["facts"].items()), numeric_from=2))
    out.append("")
    out += render_limits(plan, results)
    out += render_web(plan, results["web"])
    out += render_observability(plan, results["observability"])
    out += render_growth(plan, results["growth"], results["web"]["connections"])
    out += render_roundtrips(results["roundtrips"], results["web"])
    profiles = results["profiles"]
    out += render_profiles(profiles, profiles["get_path"])
    out += render_worker(plan, results["worker"])
    out += render_footprint(results)
    out += render_startup_work(results["startup_work"])
    out += render_newcomer(plan, results["newcomer"])
    left = results["processes"]["left_running"]
    out.append("## Clean-up")
    out.append("")
    out.append(
        f"{len(results['processes']['started'])} processes started, "
        f"{len(left)} still running after the run"
        + (f": {', '.join(left)}." if left else ".")
        + " Every database the bench created was dropped."
    )
    return "\n".join(out) + "\n"


def clean_up(pipes: list[SqlPipe], work: Path, keep: bool) -> None:
    """Stop every process, drop every database, empty Redis db 14, remove the work dir."""
    if procs.RUNNING:
        progress(f"stopping {len(procs.RUNNING)} process(es) still running")
    procs.stop_all()
    progress("dropping the databases, emptying Redis db 14, removing the work dir")
    for pipe in pipes:
        pipe.drop_databases()
        pipe.close()
    with contextlib.suppress(Exception):
        procs.redis_command(REDIS_HOST, REDIS_PORT, REDIS_DB, "FLUSHDB")
    if not keep:
        shutil.rmtree(work, ignore_errors=True)


def rerender(path: str) -> int:
    """Print the report of an earlier run's latest.json (after a change to the report)."""
    results = json.loads(Path(path).read_text(encoding="utf-8"))
    plan = Plan(**results["plan"])
    print(render(plan, results), end="")
    return 0


def main() -> int:
    """Run every phase; always stop what was started and drop what was created."""
    plan = Plan.from_environment()
    admin_url = os.environ.get("TEST_DATABASE_URL", DEFAULT_DATABASE_URL)
    keep = os.environ.get("BENCH_KEEP", "") not in ("", "0")
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    logs = work / "logs"
    logs.mkdir()
    results: dict[str, Any] = {"plan": asdict(plan)}

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    progress(f"plan: {plan.mode}; work dir {work}")
    failed = False
    pipes: list[SqlPipe] = []
    try:
        measure(plan, admin_url, work, logs, results, pipes)
    except (Exception, KeyboardInterrupt) as error:
        progress(f"FAILED: {type(error).__name__}: {error}")
        progress(f"logs of the processes: {logs}" + ("" if keep else " (kept for reading)"))
        failed = keep = True
    finally:
        clean_up(pipes, work, keep)
    left = [f"{p.name} ({p.pid})" for p in procs.STARTED if procs.group_members(p.pid)]
    results["databases"] = [name for pipe in pipes for name in pipe.databases]
    results["processes"] = {
        "started": [{"name": p.name, "pid": p.pid} for p in procs.STARTED],
        "left_running": left,
    }
    if left:
        progress(f"still running after the clean-up: {', '.join(left)}")
    if failed:
        return 1
    results["wall_s"] = time.monotonic() - T0
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    text = render(plan, results)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "latest.md").write_text(text, encoding="utf-8")
    (RESULTS_DIR / "latest.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(text, end="", flush=True)
    progress(f"done in {results['wall_s']:.0f} s; report in {RESULTS_DIR}/latest.md")
    return 1 if left else 0
