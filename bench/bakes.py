"""Baked projects: baking with cookiecutter's API, their make targets, release and seeding."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import procs
from .plan import REDIS_URL, TEMPLATE_DIR
from .sql import SqlPipe


@dataclass
class Bake:
    """A baked project and the database it runs against."""

    label: str
    path: Path
    database: str = ""
    url: str = ""
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    celery: bool = False
    bake_s: float = 0.0

    @property
    def bin(self) -> Path:
        """The project's .venv/bin."""
        return self.path / ".venv" / "bin"

    def base_env(self) -> dict[str, str]:
        """Ours without what belongs to the harness or is a setting of the service."""
        blocked = procs.service_variables(self.path)
        return {
            name: value for name, value in procs.clean_environment().items() if name not in blocked
        }

    def env(self, **overrides: str) -> dict[str, str]:
        """Environment of a service process: base_env plus the service's settings."""
        env = self.base_env()
        env.update(
            PATH=f"{self.bin}{os.pathsep}{env.get('PATH', '')}",
            PYTHONUNBUFFERED="1",
            DATABASE_URL=self.url,
            SECRET_KEY=self.secret,
            LOG_FORMAT="json",
            LOG_LEVEL="WARNING",
            RELEASE_ID="bench",
            # No drain period on SIGTERM: a bench stops its servers at once.
            DRAIN_SECONDS="0",
        )
        if self.celery:
            env["REDIS_URL"] = REDIS_URL
        env.update(overrides)
        return env


def bake(work: Path, label: str, extra: dict[str, str]) -> Bake:
    """Bake the template into work/label with cookiecutter's Python API, timing the call."""
    from cookiecutter.main import cookiecutter  # the template's .venv has it

    config = work / "cookiecutter-config.yaml"
    if not config.exists():
        config.write_text(
            f"cookiecutters_dir: {json.dumps(str(work / 'cookiecutters'))}\n"
            f"replay_dir: {json.dumps(str(work / 'replay'))}\n",
            encoding="utf-8",
        )
    out = work / label
    out.mkdir()
    # The post-gen hook prints its next steps on stdout, which is the report's: send them
    # (a child process's output, so at the descriptor level) to stderr with the progress.
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        started = time.perf_counter()
        path = cookiecutter(
            str(TEMPLATE_DIR),
            no_input=True,
            output_dir=str(out),
            extra_context=extra,
            config_file=str(config),
        )
        took = time.perf_counter() - started
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
    return Bake(label, Path(path), celery=extra.get("worker") == "celery", bake_s=took)


def start_make(b: Bake, target: str, env: dict[str, str], logs: Path) -> procs.Proc:
    """Start `make <target>` in a bake (PYTHON= passed on if BENCH_PROJECT_PYTHON is set)."""
    command = ["make", "--no-print-directory", target]
    if os.environ.get("BENCH_PROJECT_PYTHON"):
        command.append(f"PYTHON={os.environ['BENCH_PROJECT_PYTHON']}")
    return procs.start(
        f"make {target} ({b.label})",
        command,
        cwd=b.path,
        env=env,
        log_path=logs / f"{target.strip('.')}-{b.label}.log",
    )


def finish(proc: procs.Proc, timeout: float) -> float:
    """Wait for a process to exit 0 (else raise with its log); seconds since its start."""
    try:
        code = proc.popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        procs.stop(proc)
        raise RuntimeError(f"{proc.name} took over {timeout:.0f} s") from None
    procs.stop(proc)  # anything it left in its group
    if code != 0:
        raise RuntimeError(f"{proc.name} failed ({code}):\n{procs.tail(proc.log_path)}")
    return time.monotonic() - proc.started


def tools_env() -> dict[str, str]:
    """Environment of `make install` with the template's tools (uv) first on PATH."""
    env = procs.clean_environment(extra_path=str(TEMPLATE_DIR / ".venv" / "bin"))
    env["UV_PYTHON_DOWNLOADS"] = "never"
    return env


def make_install(bakes: list[Bake], logs: Path) -> None:
    """`make install` in every bake at once, with uv on PATH."""
    running = [start_make(b, "install", tools_env(), logs) for b in bakes]
    deadline = time.monotonic() + 600
    for proc in running:
        finish(proc, max(1, deadline - time.monotonic()))


def run_release(b: Bake, logs: Path) -> float:
    """Run the Procfile's release line against the bake's database; seconds it took."""
    proc = procs.start(
        f"release ({b.label})",
        procs.procfile_command(b.path, "release"),
        cwd=b.path,
        env=b.env(),
        log_path=logs / f"release-{b.database}.log",
    )
    return finish(proc, 120)


def seed(pipe: SqlPipe, b: Bake, count: int) -> list[int]:
    """Insert count todos, one second apart in created_at, oldest first; their ids."""
    rows = pipe.sql(
        b.label,
        b.url,
        "INSERT INTO todos (title, done, created_at, updated_at) "
        "SELECT 'seeded todo ' || i, i %% 3 = 0, now() - make_interval(secs => %s - i), "
        "now() - make_interval(secs => %s - i) FROM generate_series(1, %s) AS i RETURNING id",
        [count, count, count],
    )
    return sorted(row[0] for row in rows)
