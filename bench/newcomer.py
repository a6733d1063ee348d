"""The newcomer's clock (issue 10, item 3): how long a bake takes, and how long from a
bake to the first 200 following the baked README, with uv on PATH and with pip alone."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from . import procs
from .bakes import bake, finish, start_make, tools_env
from .plan import Plan, progress
from .report import fmt, median, span, table
from .sql import SqlPipe

BAKE_TARGET_S = 0.3
CLOCK_TARGETS_S = {"uv": 15.0, "pip": 45.0}
COLUMNS = {"uv": "uv on PATH", "pip": "pip only (no uv on PATH)"}
# What each installer's `make install` prints, to check that the intended one ran.
INSTALLER_SIGNS = {"uv": "uv pip install", "pip": "-m pip install"}
TOTAL = "total, bake to first 200"


def path_without_uv(path: str) -> str:
    """PATH without the folders that hold a `uv` executable."""
    return os.pathsep.join(
        folder
        for folder in path.split(os.pathsep)
        if folder and not os.access(Path(folder) / "uv", os.X_OK)
    )


def clock(installer: str, pipe: SqlPipe, prefix: str, work: Path, logs: Path) -> dict[str, Any]:
    """Bake, then the README's quickstart: make install, make .env, createdb, make
    migrate, make run until /healthz answers 200. Seconds per step and in all, and how
    many files pip downloaded (not served from its cache)."""
    began = time.monotonic()
    b = bake(work, f"newcomer-{installer}", {})
    steps = {"bake (cookiecutter API)": b.bake_s}
    env = b.base_env()
    env["PATH"] = tools_env()["PATH"] if installer == "uv" else path_without_uv(env["PATH"])
    if (shutil.which("uv", path=env["PATH"]) is None) == (installer == "uv"):
        raise RuntimeError(f"could not set up a PATH for {COLUMNS[installer]}")
    b.label = f"newcomer-{installer}"
    install = start_make(b, "install", env, logs)
    steps["make install"] = finish(install, 600)
    install_log = procs.tail(install.log_path, 10_000)
    if INSTALLER_SIGNS[installer] not in install_log:
        raise RuntimeError(f"make install did not use {installer}; see {install.log_path}")
    downloads = sum(line.lstrip().startswith("Downloading ") for line in install_log.splitlines())
    steps["make .env"] = finish(start_make(b, ".env", env, logs), 60)
    started = time.monotonic()
    # The shell's DATABASE_URL wins over .env's, as a newcomer's edit of .env would.
    env["DATABASE_URL"] = pipe.create_database(f"{prefix}_newcomer_{installer}")
    steps["createdb"] = time.monotonic() - started
    steps["make migrate"] = finish(start_make(b, "migrate", env, logs), 120)
    port = procs.free_port()
    run = start_make(b, "run", {**env, "PORT": str(port), "DRAIN_SECONDS": "0"}, logs)
    run.port = port
    try:
        steps["make run → first 200 on /healthz"] = procs.wait_for_200(run, deadline=60)
    finally:
        procs.stop(run)
    steps[TOTAL] = time.monotonic() - began
    shutil.rmtree(b.path.parent, ignore_errors=True)
    return {"steps": steps, "downloads": downloads}


def measure_newcomer(
    plan: Plan, pipe: SqlPipe, prefix: str, work: Path, logs: Path
) -> dict[str, Any]:
    """Bakes through cookiecutter's API, then the newcomer's clock with each installer."""
    bake_s = []
    for rep in range(plan.bake_reps):
        b = bake(work, f"bake-{rep}", {})
        bake_s.append(b.bake_s)
        shutil.rmtree(b.path.parent, ignore_errors=True)
    progress(f"bake through cookiecutter's API: {', '.join(f'{s:.3f}' for s in bake_s)} s")
    clocks = {}
    for installer in ("uv", "pip") if plan.newcomer_pip else ("uv",):
        clocks[installer] = clock(installer, pipe, prefix, work, logs)
        progress(
            f"newcomer's clock, {COLUMNS[installer]}: {clocks[installer]['steps'][TOTAL]:.1f} s"
        )
    return {"bake_s": bake_s, "clocks": clocks}


def met(value: float, target: float) -> str:
    """Whether a time stays under its target."""
    return "yes" if value < target else "**no**"


def render_newcomer(plan: Plan, newcomer: dict[str, Any]) -> list[str]:
    """The newcomer's section: bake time, then the clock step by step per installer."""
    out: list[str] = []
    add = out.append
    add("## The newcomer's clock")
    add("")
    bake_s = newcomer["bake_s"]
    add(
        table(
            ["measure", "median", "range", "runs", "target", "met"],
            [
                [
                    "bake the default project through cookiecutter's API, s",
                    fmt(median(bake_s), 3),
                    span(bake_s, 3),
                    str(len(bake_s)),
                    f"< {BAKE_TARGET_S:g}",
                    met(median(bake_s), BAKE_TARGET_S),
                ]
            ],
        )
    )
    add("")
    add(
        "Then, once per installer, a fresh bake and the baked README's quickstart, each "
        "step timed: `make install` (uv's cache warm from the bench's own installs of the "
        "same locks), `make .env`, `createdb`, `make migrate`, and `make run` until "
        "`/healthz` answers 200. *Total* is the wall time from the start of the bake."
    )
    add("")
    clocks = {name: entry["steps"] for name, entry in newcomer["clocks"].items()}
    skipped = f"not run in the {plan.mode} plan"
    steps = list(clocks["uv"])
    rows = []
    for step in steps:
        rows.append(
            [step]
            + [
                fmt(clocks[name][step], 2) if name in clocks else skipped
                for name in CLOCK_TARGETS_S
            ]
        )
    rows.append(["target", *(f"< {target:g}" for target in CLOCK_TARGETS_S.values())])
    rows.append(
        [
            "met",
            *(
                met(clocks[name][TOTAL], target) if name in clocks else skipped
                for name, target in CLOCK_TARGETS_S.items()
            ),
        ]
    )
    add(table(["step, s", *COLUMNS.values()], rows))
    add("")
    if "pip" in newcomer["clocks"]:
        downloads = newcomer["clocks"]["pip"]["downloads"]
        add(
            f"pip downloaded {downloads} file(s) during its `make install`"
            + (
                " instead of taking them from its cache, so its figure is partly a cold "
                "install (uv's cache holds every package by then)."
                if downloads
                else "; everything came from its cache."
            )
        )
        add("")
    return out
