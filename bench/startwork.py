"""What the web line's start-up is made of, counted rather than timed (phase 5b).

The web master's imports are taken one library at a time: each step is a fresh interpreter
of the default bake that does what the step before it did and one thing more, the last the
whole master (gunicorn.conf.py, then the app, as preload has it). Each step runs twice: under
valgrind (cachegrind, no cache simulation), which counts the instructions it executes, the
same count on a busy machine as on a quiet one; then plainly, to read its anonymous resident
memory (RssAnon), the heap a forked worker shares with its master. The start-up limits, the
SQLAlchemy app and bare Flask, are counted whole, as each of their workers imports them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from . import procs
from .bakes import Bake
from .plan import Plan, progress
from .report import fmt, table
from .servers import BASELINES_DIR

# Each step adds its statement to those of the steps before it. gevent is patched as
# gunicorn.conf.py patches it (its plugins' entry points read once); the app's step then
# runs gunicorn.conf.py itself, which finds gevent patched already.
STACK_STEPS = (
    ("gunicorn", "import gunicorn.app.wsgiapp"),
    (
        "gevent, patched",
        "from importlib import metadata; metadata.entry_points = metadata.entry_points().select;"
        " from gevent import monkey; monkey.patch_all(os=False, signal=False, subprocess=False)",
    ),
    ("pydantic", "import pydantic.main"),
    ("pydantic-settings", "import pydantic_settings"),
    ("Flask", "import flask"),
    ("SQLAlchemy Core and its psycopg2 dialect", "import sqlalchemy.dialects.postgresql.psycopg2"),
    ("SQLAlchemy ORM", "import sqlalchemy.orm"),
    ("spectree", "import spectree.plugins.flask_plugin"),
    ("the app: gunicorn.conf.py, its modules, create_app", None),
)
LIMITS = {"SQLAlchemy app": "sqlalchemy_app", "bare Flask": "bare"}
INSTRUCTIONS = re.compile(r"I\s+refs:\s+([\d,]+)")
# Printed at the end of a plain run: the process's RssAnon, in KiB.
ANON_MEMORY = (
    "print(next(line.split()[1] for line in open('/proc/self/status') "
    "if line.startswith('RssAnon')))"
)


def app_statement(b: Bake) -> str:
    """The app's step: gunicorn.conf.py as gunicorn runs it, then the Procfile's module."""
    module = procs.procfile_command(b.path, "web")[-1].partition(":")[0]
    return f"exec(open('gunicorn.conf.py').read()); import {module}"


def run(b: Bake, command: list[str], baseline: bool) -> subprocess.CompletedProcess[str]:
    """A command in the bake's folder and environment; the limits find their files."""
    env = b.env()
    if baseline:
        env["PYTHONPATH"] = str(BASELINES_DIR)
    done = subprocess.run(  # noqa: S603 - the bake's interpreter, valgrind, our statements
        command, cwd=b.path, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{command[-1]!r} failed: {done.stderr[-2000:]}")
    return done


def counted(b: Bake, code: str, baseline: bool) -> dict[str, int]:
    """Instructions and RssAnon (KiB) of `python -c code` in the bake."""
    python = str(b.bin / "python")
    plain = run(b, [python, "-c", f"{code}; {ANON_MEMORY}"], baseline)
    valgrind = shutil.which("valgrind") or "valgrind"
    count = [valgrind, "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
    found = INSTRUCTIONS.search(run(b, [*count, python, "-c", code], baseline).stderr)
    if found is None:
        raise RuntimeError(f"valgrind gave no instruction count for {code!r}")
    return {
        "instructions": int(found[1].replace(",", "")),
        "anon_kib": int(plain.stdout.split()[-1]),
    }


def measure_startup_work(plan: Plan, b: Bake) -> dict[str, Any]:
    """Every step, then the limits, two at a time (the machine has two cores). The test plan
    counts the first step against bare Flask, enough to prove the counting and the report."""
    steps = STACK_STEPS[:1] if plan.mode == "test" else STACK_STEPS
    limits = {"bare Flask": LIMITS["bare Flask"]} if plan.mode == "test" else LIMITS
    jobs: list[tuple[str, str, bool]] = []
    statements: list[str] = []
    for label, statement in steps:
        statements.append(statement or app_statement(b))
        jobs.append((label, "; ".join(statements), False))
    for label, module in limits.items():
        jobs.append((label, f"import gunicorn.app.wsgiapp; import {module}", True))
    with ThreadPoolExecutor(max_workers=2) as pool:
        counts = list(pool.map(lambda job: counted(b, job[1], job[2]), jobs))
    result: dict[str, dict[str, dict[str, int]]] = {"stack": {}, "limits": {}}
    for (label, _, baseline), count in zip(jobs, counts, strict=True):
        result["limits" if baseline else "stack"][label] = count
    counts_by_label = [
        f"{job[0]} {c['instructions'] / 1e6:.0f} M" for job, c in zip(jobs, counts, strict=True)
    ]
    progress("start-up work: " + ", ".join(counts_by_label))
    return result


def render_startup_work(result: dict[str, Any]) -> list[str]:
    """The steps and what each adds, then the whole master against each limit."""
    out: list[str] = []
    add = out.append
    add("## Start-up work by library (instructions and anonymous memory, counted)")
    add("")
    rows = []
    before = {"instructions": 0, "anon_kib": 0}
    for label, count in result["stack"].items():
        rows.append(
            [
                f"+ {label}" if rows else label,
                fmt(count["instructions"] / 1e6, 0),
                fmt((count["instructions"] - before["instructions"]) / 1e6, 0),
                fmt(count["anon_kib"] / 1024, 1),
                fmt((count["anon_kib"] - before["anon_kib"]) / 1024, 1),
            ]
        )
        before = count
    add(table(["step", "instructions, M", "added, M", "RssAnon, MiB", "added, MiB"], rows))
    add("")
    rows = [
        [
            label,
            fmt(count["instructions"] / 1e6, 0),
            fmt(before["instructions"] / count["instructions"], 2),
            fmt(count["anon_kib"] / 1024, 1),
            fmt(before["anon_kib"] / count["anon_kib"], 2),
        ]
        for label, count in result["limits"].items()
    ]
    add(
        table(
            [
                "limit",
                "instructions, M",
                "web master / limit",
                "RssAnon, MiB",
                "master's RssAnon / limit's",
            ],
            rows,
        )
    )
    add("")
    add(
        "Each step is a fresh interpreter of the default bake doing what the steps above it "
        "did and one thing more; the last is the whole web master. A limit imports gunicorn "
        "and its one file, as each of its workers does. Instructions are valgrind's count, "
        "the same on a busy machine as on a quiet one: the start-up time an idle core would "
        "take follows them. RssAnon is the heap at the end, which the master's forked workers "
        "share with it (their PSS counts a third of it each, with two workers)."
    )
    add("")
    return out
