"""Web processes under test: the baked `web` line and the baselines, restarted if they die."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from . import procs
from .bakes import Bake
from .plan import BENCH_DIR, progress

T = TypeVar("T")
BASELINES_DIR = BENCH_DIR / "baselines"
# The baselines' gunicorn settings: two workers, as the bench runs the baked `web` line
# (WEB_CONCURRENCY=2), of gunicorn's default sync kind, the least a user would write.
GUNICORN_SETTINGS = ["--workers", "2", "--worker-class", "sync", "--threads", "1"]


@dataclass(frozen=True)
class Scenario:
    """One request the load generator repeats."""

    key: str
    label: str
    method: str
    path: str


def launch_web(b: Bake, logs: Path, name: str, **overrides: str) -> procs.Proc:
    """Start the Procfile's web line on a free port (two workers unless overridden)."""
    port = procs.free_port()
    env = b.env(PORT=str(port), **{"WEB_CONCURRENCY": "2", **overrides})
    return procs.start(
        name,
        procs.procfile_command(b.path, "web"),
        cwd=b.path,
        env=env,
        log_path=logs / f"{name}-{port}.log",
        port=port,
    )


def start_web(b: Bake, logs: Path, name: str, **overrides: str) -> procs.Proc:
    """Start the Procfile's web line on a free port and wait for its first 200."""
    proc = launch_web(b, logs, name, **overrides)
    procs.wait_for_200(proc)
    return proc


def launch_baseline(b: Bake, logs: Path, module: str, *, access_log: bool = False) -> procs.Proc:
    """Start bench/baselines/<module>.py under gunicorn with the web line's settings, the
    bake's interpreter and database, on 127.0.0.1. With access_log, gunicorn writes its own
    text access line for each request on stdout, which goes to a log file as the web line's
    does; without, nothing is written per request (as the web line at LOG_LEVEL=WARNING)."""
    port = procs.free_port()
    env = b.base_env()
    env.update(PATH=f"{b.bin}:{env.get('PATH', '')}", DATABASE_URL=b.url, PYTHONUNBUFFERED="1")
    command = [
        "gunicorn",
        *GUNICORN_SETTINGS,
        *(["--access-logfile", "-"] if access_log else []),
        "--bind",
        f"127.0.0.1:{port}",
        "--worker-tmp-dir",
        "/dev/shm",  # noqa: S108 - heartbeats in RAM, as the baked gunicorn.conf.py does
        "--no-control-socket",
        f"{module}:app",
    ]
    name = f"{module}-log" if access_log else module
    return procs.start(
        name,
        command,
        cwd=BASELINES_DIR,
        env=env,
        log_path=logs / f"{name}-{port}.log",
        port=port,
    )


def warm(port: int, scenarios: list[Scenario]) -> None:
    """A few requests per scenario, so each worker has imported and connected."""
    for scenario in scenarios:
        for _ in range(8):
            payload = {"title": "warm-up", "done": False} if scenario.method == "POST" else None
            status, _ = procs.http_request(scenario.method, port, scenario.path, payload)
            if status >= 400:
                raise RuntimeError(f"{scenario.label} answered {status} during warm-up")


def page_items(port: int, path: str) -> int:
    """How many items a page of GET /api/todos holds (0 unless it answers 200)."""
    status, body = procs.http_request("GET", port, path)
    return len(json.loads(body)["items"]) if status == 200 else 0


class WebServer:
    """A web process under load that is restarted (and the run redone) if it dies or
    loses a worker mid-run: these machines are shared, and a neighbour's cleanup has
    been seen sending SIGTERM to every gunicorn. Each restart is reported."""

    MAX_RESTARTS = 3

    def __init__(
        self,
        name: str,
        launch: Callable[[], procs.Proc],
        incidents: list[str],
        probe: str = "/healthz",
        *,
        wait: bool = True,
    ) -> None:
        """Launch it; unless told not to wait (to start several at once, then call ready()
        on each), wait for its first 200 and its workers."""
        self.name, self.launch, self.incidents, self.probe = name, launch, incidents, probe
        self.restarts = 0
        self.scenarios: list[Scenario] = []
        self.workers: list[int] = []
        self.proc = launch()
        if wait:
            self.ready()

    def ready(self) -> None:
        """Wait for its first 200 on the probe, then for its list of workers to settle."""
        procs.wait_for_200(self.proc, self.probe)
        self.workers = procs.settled_children(self.proc.pid)

    @property
    def port(self) -> int:
        """Where it listens."""
        return self.proc.port or 0

    def warm(self, scenarios: list[Scenario]) -> None:
        """Warm up with these scenarios, now and after every restart."""
        self.scenarios = scenarios
        warm(self.port, scenarios)

    def healthy(self) -> bool:
        """Still running, with the same worker processes it had."""
        return self.proc.popen.poll() is None and procs.child_pids(self.proc.pid) == self.workers

    def peak_rss_kib(self) -> list[int]:
        """Each worker's peak resident set size so far (VmHWM), in KiB."""
        peaks = (procs.rss_kib(pid, "VmHWM") for pid in procs.child_pids(self.proc.pid))
        return [peak for peak in peaks if peak is not None]

    def run(self, label: str, measure: Callable[[int], T]) -> T:
        """measure(port), redone on a fresh process if this one failed during it."""
        while True:
            error = ""
            try:
                result = measure(self.port)
            except RuntimeError as failure:
                error = str(failure).strip().splitlines()[-1]
            if not error and self.healthy():
                return result
            code = self.proc.popen.poll()
            what = f"exited ({code})" if code is not None else "lost a worker"
            self.incidents.append(
                f"{self.name} {what} during `{label}`"
                + (f" ({error})" if error else "")
                + "; restarted and the run redone"
            )
            progress(f"INCIDENT: {self.incidents[-1]}")
            if self.restarts >= self.MAX_RESTARTS:
                raise RuntimeError(f"{self.name} failed {self.restarts + 1} times; giving up")
            self.restarts += 1
            procs.stop(self.proc)
            self.proc = self.launch()
            self.ready()
            warm(self.port, self.scenarios)

    def stop(self) -> None:
        """Stop the process and its workers."""
        procs.stop(self.proc)


def ready_all(servers: Sequence[WebServer]) -> None:
    """ready() on servers launched together, side by side (each waits half a second at least
    for its workers to settle)."""
    with ThreadPoolExecutor(max_workers=len(servers)) as pool:
        list(pool.map(WebServer.ready, servers))


def stop_all(servers: Sequence[WebServer]) -> None:
    """stop() on each server, side by side (each waits for its workers to leave)."""
    with ThreadPoolExecutor(max_workers=len(servers)) as pool:
        list(pool.map(WebServer.stop, servers))
