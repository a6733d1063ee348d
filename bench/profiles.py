"""Where the time goes: the baked app and its limits profiled without a web server
(appprofile.py, run with the default bake's interpreter), so that a missed target comes with
its cause."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from . import procs
from .bakes import Bake
from .plan import BENCH_DIR, Plan, progress
from .report import fmt, table
from .servers import BASELINES_DIR

PROFILER = BENCH_DIR / "appprofile.py"
# Groups shown by name in the tables; the rest are summed as "everything else".
SHOWN_GROUPS = 7
SHOWN_IMPORTS = 8


def profile_app(plan: Plan, b: Bake, app: str, paths: list[str], baseline: bool) -> dict[str, Any]:
    """appprofile.py's JSON for one app, run in the bake's interpreter and environment."""
    env = b.env()
    if baseline:
        env["PYTHONPATH"] = str(BASELINES_DIR)
    command = [str(b.bin / "python"), str(PROFILER), "--app", app]
    command += [arg for path in paths for arg in ("--path", path)]
    command += ["--requests", str(plan.profile_requests)]
    done = subprocess.run(  # noqa: S603 - our own script, with the baked interpreter
        command, cwd=b.path, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"profiling {app} failed: {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def measure_profiles(plan: Plan, b: Bake, get_path: str) -> dict[str, Any]:
    """The baked app on /healthz and GET one todo; bare Flask on the first, the pooled app and
    the SQLAlchemy app on the second."""
    baked_app = procs.procfile_command(b.path, "web")[-1]
    out = {
        "baked": profile_app(plan, b, baked_app, ["/healthz", get_path], baseline=False),
        "bare": profile_app(plan, b, "bare:app", ["/healthz"], baseline=True),
        "pooled": profile_app(plan, b, "pooled:app", [get_path], baseline=True),
        "sqlalchemy": profile_app(plan, b, "sqlalchemy_app:app", [get_path], baseline=True),
    }
    for name, result in out.items():
        progress(
            f"profile {name}: "
            + ", ".join(f"{path} {p['wall_us']:.0f} µs" for path, p in result["paths"].items())
            + f"; import {result['import']['imports_ms']:.0f} ms"
        )
    return out


def shares(profile: dict[str, Any]) -> list[tuple[str, float]]:
    """The biggest groups of a profiled path, then the rest as one."""
    ordered = list(profile["self_share"].items())
    shown = ordered[:SHOWN_GROUPS]
    rest = sum(share for _, share in ordered[SHOWN_GROUPS:])
    return shown + ([("everything else", rest)] if rest else [])


def render_profiles(profiles: dict[str, Any], get_path: str) -> list[str]:
    """The profiles section: per request, then at import."""
    out: list[str] = []
    add = out.append
    add("## Where the time goes (profiles of the apps, no web server)")
    add("")
    add(
        "Each app called as WSGI in one process (no gunicorn, no network but PostgreSQL's): "
        "*µs per request* unprofiled, then the self time of a cProfile run grouped by the "
        "package its code lives in. The profiler slows Python code more than C code and "
        "waiting, so read the shares as where the Python work is, not as exact times. "
        "`psycopg2 (waiting on PostgreSQL)` is the query's round trip."
    )
    add("")
    groups = [
        ("`GET /healthz`", "/healthz", ["bare"]),
        ("`GET /api/todos/<id>`", get_path, ["sqlalchemy", "pooled"]),
    ]
    for title, path, limits in groups:
        baked = profiles["baked"]["paths"][path]
        bases = {limit: profiles[limit]["paths"][path] for limit in limits}
        add(
            f"{title}: {baked['wall_us']:,.0f} µs per request in the baked app; in its limits, "
            + ", ".join(f"{base['wall_us']:,.0f} µs ({limit})" for limit, base in bases.items())
            + "."
        )
        add("")
        rows = [["baked", name, fmt(100 * share, 1)] for name, share in shares(baked)]
        for limit, base in bases.items():
            rows += [[limit, name, fmt(100 * share, 1)] for name, share in shares(base)]
        add(table(["app", "package", "% of self time"], rows, numeric_from=2))
        add("")
        top = "; ".join(
            f"`{name}` {100 * share:.0f}%" for name, share in baked["top_functions"].items()
        )
        add(f"Costliest functions of the baked app (self time): {top}.")
        add("")
    add("Import of the app's module in a fresh interpreter (`python -X importtime`, self time):")
    add("")
    rows = []
    for name in ("baked", "sqlalchemy", "bare"):
        imports = profiles[name]["import"]
        listed = list(imports["by_package_ms"].items())[:SHOWN_IMPORTS]
        rows += [[name, package, fmt(ms, 1)] for package, ms in listed]
        rows.append([name, "all imports", fmt(imports["imports_ms"], 1)])
        rows.append([name, "whole process, s", fmt(imports["process_wall_s"], 3)])
    add(table(["app", "package", "ms"], rows, numeric_from=2))
    add("")
    return out
