"""Load generators: wrk when it is there (installed from Debian if missing), else a
bounded Python one (threads + http.client). Both report the same LoadResult; the Loader
picks one for the run and drives it at the plan's duration and connections."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .plan import Plan, progress
from .servers import Scenario

WRK_DIR = Path(__file__).resolve().parent / "wrk"
POST_BODY = b'{"title": "bench todo", "done": false}'
RESULT_MARKER = "BENCH-RESULT "


@dataclass(frozen=True)
class LoadResult:
    """One fixed-duration run against one URL."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def ensure_wrk(progress: Callable[[str], None]) -> str | None:
    """wrk's path; installs Debian's package when missing and allowed. None: use Python."""
    if os.environ.get("BENCH_LOADGEN", "").lower() == "python":
        progress("BENCH_LOADGEN=python: using the Python load generator")
        return None
    found = shutil.which("wrk")
    if found:
        return found
    if os.environ.get("BENCH_NO_INSTALL") or os.geteuid() != 0 or not shutil.which("apt-get"):
        progress("wrk is missing and cannot be installed here: using the Python load generator")
        return None
    progress("wrk is missing: apt-get update && apt-get install -y wrk")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        try:
            done = subprocess.run(  # noqa: S603 - fixed apt-get commands
                command, env=env, capture_output=True, text=True, timeout=240, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            progress(f"{' '.join(command)} failed ({error}): using the Python load generator")
            return None
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:]
            progress(f"{' '.join(command)} failed {last}: using the Python load generator")
            return None
    return shutil.which("wrk")


def wrk_version(wrk: str) -> str:
    """wrk's first line of -v, e.g. 'wrk 4.1.0 [epoll] ...'."""
    done = subprocess.run(  # noqa: S603
        [wrk, "-v"], capture_output=True, text=True, timeout=10, check=False
    )
    words = (done.stdout or done.stderr).split()
    # 'wrk debian/4.1.0-3+b2 [epoll] Copyright ...': keep the name, version and engine.
    return " ".join(words[:3]) if words else "wrk"


def run_wrk(
    wrk: str, url: str, method: str, duration: float, threads: int, connections: int
) -> LoadResult:
    """One wrk run; parses the line that wrk/summary.lua prints."""
    script = WRK_DIR / ("post.lua" if method == "POST" else "summary.lua")
    env = {**os.environ, "LUA_PATH": f"{WRK_DIR}/?.lua;;"}
    command = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(  # noqa: S603 - wrk against our own server on 127.0.0.1
        command, capture_output=True, text=True, timeout=duration + 30, env=env, check=False
    )
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            data = json.loads(line[len(RESULT_MARKER) :])
            break
    else:
        raise RuntimeError(f"wrk printed no result (exit {done.returncode}): {done.stderr}")
    errors = sum(
        data[name]
        for name in ("connect_errors", "read_errors", "write_errors", "timeouts", "status_errors")
    )
    return LoadResult(
        rps=data["requests"] / (data["duration_us"] / 1e6),
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        requests=data["requests"],
        errors=errors,
    )


MAX_REQUESTS_PER_THREAD = 200_000


def run_python(
    url_port: int, path: str, method: str, duration: float, connections: int
) -> LoadResult:
    """The fallback: `connections` threads, each one request at a time, until the deadline."""
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections
    start_line = threading.Barrier(connections + 1)
    body = POST_BODY if method == "POST" else None
    headers = {"Content-Type": "application/json"} if body else {}
    stop_at = 0.0

    def worker(index: int) -> None:
        start_line.wait()
        conn: http.client.HTTPConnection | None = None
        for _ in range(MAX_REQUESTS_PER_THREAD):
            if time.monotonic() >= stop_at:
                break
            began = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", url_port, timeout=10)
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status >= 400:
                    errors[index] += 1
                if response.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                errors[index] += 1
                if conn is not None:
                    conn.close()
                conn = None
                continue
            latencies[index].append(time.perf_counter() - began)
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(connections)]
    for thread in threads:
        thread.start()
    stop_at = time.monotonic() + duration
    began = time.perf_counter()
    start_line.wait()
    for thread in threads:
        thread.join(timeout=duration + 15)
    elapsed = time.perf_counter() - began
    every = sorted(value for values in latencies for value in values)
    if not every:
        return LoadResult(0.0, float("nan"), float("nan"), 0, sum(errors))
    quantiles = statistics.quantiles(every, n=100, method="inclusive")
    return LoadResult(
        rps=len(every) / elapsed,
        p50_ms=quantiles[49] * 1000,
        p99_ms=quantiles[98] * 1000,
        requests=len(every),
        errors=sum(errors),
    )


class Loader:
    """wrk or the Python fallback, with the plan's duration and concurrency."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.wrk = ensure_wrk(progress)
        self.name = wrk_version(self.wrk) if self.wrk else "Python threads + http.client"

    def run(
        self,
        port: int,
        scenario: Scenario,
        duration: float | None = None,
        connections: int | None = None,
    ) -> LoadResult:
        """One fixed-duration run of a scenario (the plan's duration and connections)."""
        duration = duration or self.plan.duration
        connections = connections or self.plan.wrk_connections
        if self.wrk:
            return run_wrk(
                self.wrk,
                f"http://127.0.0.1:{port}{scenario.path}",
                scenario.method,
                duration,
                min(self.plan.wrk_threads, connections),
                connections,
            )
        return run_python(port, scenario.path, scenario.method, duration, connections)
