"""`make bench`: bake, install and measure the template's two main bakes side by side.

Phases, each bounded in requests and time:
  1. bake the default and the worker=celery projects; `make install` in each;
     one fresh PostgreSQL database per bake, migrated by the Procfile's release line;
  2. web (default bake): wrk rounds over five scenarios, interleaved; a one-off run with
     LOG_LEVEL=INFO; database round trips per request through a counting proxy;
  3. memory of the web processes after the load;
  4. start-up of the web line: process start to first 200 on /healthz;
  5. worker (celery bake): 400 archive tasks drained by 1 vs 2 worker processes;
then the Markdown report on stdout and in build/bench/latest.md (raw runs in latest.json).
Progress lines go to stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import load, procs
from .dbproxy import CountingProxy
from .report import fmt, median, ratio, spread, table

TEMPLATE_DIR = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = TEMPLATE_DIR / "build" / "bench"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_HOST, REDIS_PORT, REDIS_DB = "127.0.0.1", 6379, 14
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
CELERY_QUEUE = "celery"
# Scenarios also measured against a second web process with LOG_LEVEL=INFO (access logs on).
INFO_TWINS = ("healthz", "first")
# The replay of one read's statements: alternating short runs; the minimum is quoted,
# since noise on a shared machine only ever adds time.
REPLAY_REPS, REPLAY_SECONDS = 6, 0.25

T0 = time.monotonic()


def progress(message: str) -> None:
    """One progress line on stderr, stamped with the seconds since the start."""
    print(f"[bench {time.monotonic() - T0:6.1f}s] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Plan:
    """How much to measure; BENCH_QUICK=1 runs one repetition of everything."""

    quick: bool
    web_reps: int
    duration: float
    wrk_threads: int
    wrk_connections: int
    seed_todos: int
    deep_after: int
    page_size: int
    worker_reps: int
    tasks: int
    startup_reps: int
    roundtrip_requests: int

    @classmethod
    def from_environment(cls) -> Plan:
        """The full plan, or the smoke-check one under BENCH_QUICK=1."""
        quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
        return cls(
            quick=quick,
            web_reps=1 if quick else 5,
            duration=float(os.environ.get("BENCH_DURATION", 2 if quick else 5)),
            wrk_threads=2,
            wrk_connections=16,
            seed_todos=2000,
            deep_after=1900,
            page_size=20,
            worker_reps=1 if quick else 3,
            tasks=400,
            startup_reps=1 if quick else 5,
            roundtrip_requests=20,
        )


# --------------------------------------------------------------------------- SQL


class SqlPipe:
    """bench/sqlpipe.py running under a baked project's interpreter (which has psycopg2)."""

    def __init__(self, python: Path) -> None:
        popen = subprocess.Popen(  # noqa: S603 - our own script, with the baked interpreter
            [str(python), str(BENCH_DIR / "sqlpipe.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        # Not in procs.RUNNING: it must outlive the services, to drop the databases last.
        self.proc = procs.Proc("sqlpipe", popen, time.monotonic())  # type: ignore[arg-type]
        self.popen = popen

    def ask(self, request: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
        """Send one request and wait (bounded) for its answer."""
        if self.popen.stdin is None or self.popen.stdout is None:
            raise RuntimeError("sqlpipe has no pipes")
        self.popen.stdin.write(json.dumps(request) + "\n")
        self.popen.stdin.flush()
        ready, _, _ = select.select([self.popen.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError(f"sqlpipe gave no answer within {timeout} s to {request.get('op')}")
        line = self.popen.stdout.readline()
        if not line:
            raise RuntimeError("sqlpipe exited")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"SQL failed: {answer['error']} (in {request.get('sql', '')[:80]})")
        return answer

    def sql(self, conn: str, url: str, sql: str, params: list[Any] | None = None) -> list[Any]:
        """The rows of one statement (empty for statements without rows)."""
        answer = self.ask({"op": "sql", "conn": conn, "url": url, "sql": sql, "params": params})
        return answer["rows"] or []

    def close(self) -> None:
        """Close stdin (the script then closes its connections and exits) and reap it."""
        with contextlib.suppress(OSError):
            if self.popen.stdin is not None:
                self.popen.stdin.close()
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            procs.stop(self.proc)


def database_url(admin_url: str, name: str, **query: str) -> str:
    """admin_url pointing at another database (and with extra query parameters)."""
    parts = urllib.parse.urlsplit(admin_url)
    params = dict(urllib.parse.parse_qsl(parts.query))
    params.update(query)
    return urllib.parse.urlunsplit(
        parts._replace(path=f"/{name}", query=urllib.parse.urlencode(params))
    )


# --------------------------------------------------------------------------- bakes


@dataclass
class Bake:
    """A baked, installed project and the database it runs against."""

    label: str
    path: Path
    database: str = ""
    url: str = ""
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    celery: bool = False

    @property
    def bin(self) -> Path:
        """The project's .venv/bin."""
        return self.path / ".venv" / "bin"

    def env(self, **overrides: str) -> dict[str, str]:
        """Environment of a service process: ours minus the service's variables, plus them."""
        blocked = procs.service_variables(self.path)
        env = {
            name: value for name, value in procs.clean_environment().items() if name not in blocked
        }
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
    """Bake the template into work/label with cookiecutter's Python API."""
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
        path = cookiecutter(
            str(TEMPLATE_DIR),
            no_input=True,
            output_dir=str(out),
            extra_context=extra,
            config_file=str(config),
        )
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
    return Bake(label, Path(path), celery=extra.get("worker") == "celery")


def make_install(bakes: list[Bake], logs: Path) -> None:
    """`make install` in every bake at once, with the template's tools (uv) first on PATH."""
    env = procs.clean_environment(extra_path=str(TEMPLATE_DIR / ".venv" / "bin"))
    env["UV_PYTHON_DOWNLOADS"] = "never"
    command = ["make", "--no-print-directory", "install"]
    if os.environ.get("BENCH_PROJECT_PYTHON"):
        command.append(f"PYTHON={os.environ['BENCH_PROJECT_PYTHON']}")
    running = [
        procs.start(
            f"make install ({b.label})",
            command,
            cwd=b.path,
            env=env,
            log_path=logs / f"install-{b.label}.log",
        )
        for b in bakes
    ]
    deadline = time.monotonic() + 600
    for proc in running:
        try:
            proc.popen.wait(timeout=max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            procs.stop(proc)
            raise RuntimeError(f"{proc.name} took over 600 s") from None
        procs.RUNNING.remove(proc)
        if proc.popen.returncode != 0:
            raise RuntimeError(f"{proc.name} failed:\n{procs.tail(proc.log_path)}")


def run_release(b: Bake, logs: Path) -> float:
    """Run the Procfile's release line against the bake's database; seconds it took."""
    proc = procs.start(
        f"release ({b.label})",
        procs.procfile_command(b.path, "release"),
        cwd=b.path,
        env=b.env(),
        log_path=logs / f"release-{b.label}.log",
    )
    try:
        code = proc.popen.wait(timeout=120)
    except subprocess.TimeoutExpired:
        procs.stop(proc)
        raise RuntimeError("the release process took over 120 s") from None
    procs.RUNNING.remove(proc)
    if code != 0:
        raise RuntimeError(f"release failed ({code}):\n{procs.tail(proc.log_path)}")
    return time.monotonic() - proc.started


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


# --------------------------------------------------------------------------- web


@dataclass(frozen=True)
class Scenario:
    """One line of the web table."""

    key: str
    label: str
    method: str
    path: str


def deep_cursor(port: int, after: int) -> str:
    """The cursor after `after` items, found by paging through once (100 at a time)."""
    cursor, seen = None, 0
    for _ in range(after // 100 + 2):
        size = min(100, after - seen)
        query = f"?limit={size}" + (f"&cursor={cursor}" if cursor else "")
        status, body = procs.http_request("GET", port, f"/api/todos{query}")
        if status != 200:
            raise RuntimeError(f"GET /api/todos{query} answered {status}")
        page = json.loads(body)
        seen += len(page["items"])
        cursor = page["next_cursor"]
        if seen >= after:
            return str(cursor)
    raise RuntimeError(f"could not page {after} items deep")


def warm(port: int, scenarios: list[Scenario]) -> None:
    """A few requests per scenario, so each worker has imported and connected."""
    for scenario in scenarios:
        for _ in range(8):
            payload = {"title": "warm-up", "done": False} if scenario.method == "POST" else None
            status, _ = procs.http_request(scenario.method, port, scenario.path, payload)
            if status >= 400:
                raise RuntimeError(f"{scenario.label} answered {status} during warm-up")


class Loader:
    """wrk or the Python fallback, with the plan's duration and concurrency."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.wrk = load.ensure_wrk(progress)
        self.name = load.wrk_version(self.wrk) if self.wrk else "Python threads + http.client"

    def run(self, port: int, scenario: Scenario) -> load.LoadResult:
        """One fixed-duration run of a scenario."""
        if self.wrk:
            return load.run_wrk(
                self.wrk,
                f"http://127.0.0.1:{port}{scenario.path}",
                scenario.method,
                self.plan.duration,
                self.plan.wrk_threads,
                self.plan.wrk_connections,
            )
        return load.run_python(
            port, scenario.path, scenario.method, self.plan.duration, self.plan.wrk_connections
        )


class WebServer:
    """A web process under load that is restarted (and the run redone) if it dies or
    loses a worker mid-run: these machines are shared, and a neighbour's cleanup has
    been seen sending SIGTERM to every gunicorn. Each restart is reported."""

    MAX_RESTARTS = 3

    def __init__(self, b: Bake, logs: Path, name: str, incidents: list[str], **env: str) -> None:
        self.bake, self.logs, self.name, self.env = b, logs, name, env
        self.incidents = incidents
        self.restarts = 0
        self.proc = start_web(b, logs, name, **env)
        self.workers = procs.child_pids(self.proc.pid)

    @property
    def port(self) -> int:
        """Where it listens."""
        return self.proc.port or 0

    def healthy(self) -> bool:
        """Still running, with the same worker processes it had."""
        return self.proc.popen.poll() is None and procs.child_pids(self.proc.pid) == self.workers

    def run(self, loader: Loader, scenario: Scenario, warm_with: list[Scenario]) -> load.LoadResult:
        """One run of a scenario, redone on a fresh process if this one failed during it."""
        while True:
            error = ""
            try:
                result = loader.run(self.port, scenario)
            except RuntimeError as failure:
                error = str(failure).strip().splitlines()[-1]
            if not error and self.healthy():
                return result
            code = self.proc.popen.poll()
            what = f"exited ({code})" if code is not None else "lost a worker"
            self.incidents.append(
                f"{self.name} {what} during `{scenario.label}`"
                + (f" ({error})" if error else "")
                + "; restarted and the run redone"
            )
            progress(f"INCIDENT: {self.incidents[-1]}")
            if self.restarts >= self.MAX_RESTARTS:
                raise RuntimeError(f"{self.name} failed {self.restarts + 1} times; giving up")
            self.restarts += 1
            procs.stop(self.proc)
            self.proc = start_web(self.bake, self.logs, self.name, **self.env)
            self.workers = procs.child_pids(self.proc.pid)
            warm(self.port, warm_with)


def measure_web(
    plan: Plan, loader: Loader, pipe: SqlPipe, b: Bake, logs: Path, results: dict[str, Any]
) -> None:
    """Phases 2 and 3: interleaved wrk rounds, the INFO run, round trips, memory."""
    ids = seed(pipe, b, plan.seed_todos)
    progress(f"seeded {len(ids)} todos")
    incidents: list[str] = []
    web = WebServer(b, logs, "web-warning", incidents)
    web_info = WebServer(b, logs, "web-info", incidents, LOG_LEVEL="INFO")
    progress(f"web (WARNING) on :{web.port}, web (INFO) on :{web_info.port}, 2 workers each")
    cursor = deep_cursor(web.port, plan.deep_after)
    # A cursor one page in separates what any cursor costs from what depth costs.
    page2_cursor = deep_cursor(web.port, plan.page_size)
    some_id = ids[len(ids) // 2]
    scenarios = [
        Scenario("healthz", "GET /healthz", "GET", "/healthz"),
        Scenario(
            "first",
            f"GET /api/todos?limit={plan.page_size} (first page)",
            "GET",
            f"/api/todos?limit={plan.page_size}",
        ),
        Scenario(
            "page2",
            f"GET /api/todos?limit={plan.page_size}&cursor=... (after {plan.page_size})",
            "GET",
            f"/api/todos?limit={plan.page_size}&cursor={page2_cursor}",
        ),
        Scenario(
            "deep",
            f"GET /api/todos?limit={plan.page_size}&cursor=... (after {plan.deep_after})",
            "GET",
            f"/api/todos?limit={plan.page_size}&cursor={cursor}",
        ),
        Scenario("get", "GET /api/todos/<id>", "GET", f"/api/todos/{some_id}"),
        Scenario("post", "POST /api/todos", "POST", "/api/todos"),
    ]
    deep = next(s for s in scenarios if s.key == "deep")
    status, body = procs.http_request("GET", web.port, deep.path)
    deep_items = len(json.loads(body)["items"]) if status == 200 else 0
    if deep_items != plan.page_size:
        raise RuntimeError(f"the deep page gave {deep_items} items, not {plan.page_size}")
    warm(web.port, scenarios)
    warm(web_info.port, [s for s in scenarios if s.key in INFO_TWINS])

    # The run order of one round: each LOG_LEVEL=INFO twin next to its WARNING run, the
    # three list pages next to each other. Odd rounds run it backwards (A B B A ...), so a
    # load on the machine that rises or falls during the session hits pairs alike.
    by_key = {s.key: s for s in scenarios}
    order: list[tuple[str, Scenario, WebServer]] = []
    for scenario in scenarios:
        if scenario.key in INFO_TWINS:
            order.append((f"{scenario.key}_info", scenario, web_info))
        order.append((scenario.key, scenario, web))
    runs: dict[str, list[dict[str, Any]]] = {key: [] for key, _, _ in order}
    labels = {
        key: s.label + (" [LOG_LEVEL=INFO]" if server is web_info else "")
        for key, s, server in order
    }

    def our_pids() -> dict[str, set[int]]:
        """Both web processes (and their workers), and their PostgreSQL backends."""
        web_pids = set(procs.group_members(web.proc.pid))
        web_pids |= set(procs.group_members(web_info.proc.pid))
        rows = pipe.sql(
            b.label, b.url, "SELECT pid FROM pg_stat_activity WHERE datname = %s", [b.database]
        )
        return {"web": web_pids, "postgres": {int(row[0]) for row in rows}}

    for round_no in range(plan.web_reps):
        for key, scenario, server in order if round_no % 2 == 0 else order[::-1]:
            log_path = server.proc.log_path
            before = log_path.stat().st_size if log_path else 0
            with procs.CpuMeter(our_pids) as cpu:
                result = server.run(
                    loader,
                    scenario,
                    scenarios if server is web else [by_key[k] for k in INFO_TWINS],
                )
            log_path = server.proc.log_path  # a new file if it had to be restarted
            after = log_path.stat().st_size if log_path else 0
            runs[key].append(
                {
                    **asdict(result),
                    "log_bytes_per_request": max(after - before, 0) / max(result.requests, 1),
                    "ours_cpu_pct": cpu.ours_pct,
                    "others_cpu_pct": cpu.others_pct,
                    "cpu_us_per_request": {
                        name: 1e6 * used / max(result.requests, 1)
                        for name, used in cpu.seconds.items()
                    },
                    "service_cpu_us": 1e6
                    * (cpu.seconds.get("web", 0.0) + cpu.seconds.get("postgres", 0.0))
                    / max(result.requests, 1),
                }
            )
            progress(
                f"round {round_no + 1}/{plan.web_reps} {labels[key]}: "
                f"{result.rps:,.0f} req/s p50 {result.p50_ms:.2f} ms "
                f"p99 {result.p99_ms:.2f} ms errors {result.errors}; CPU: ours "
                f"{cpu.ours_pct:.0f}%, others {cpu.others_pct:.0f}%"
            )

    memory = {"gunicorn master": procs.rss_kib(web.proc.pid)}
    for n, child in enumerate(procs.child_pids(web.proc.pid), 1):
        memory[f"gunicorn worker {n}"] = procs.rss_kib(child)
    log_path = web.proc.log_path
    warning_log_lines = len(log_path.read_text(errors="replace").splitlines()) if log_path else 0
    procs.stop(web.proc)
    procs.stop(web_info.proc)
    progress(f"web load done; RSS (KiB) {memory}")
    todo_count = pipe.sql(b.label, b.url, "SELECT count(*) FROM todos")[0][0]

    results["web"] = {
        "scenarios": [asdict(s) for s in scenarios],
        "labels": labels,
        "runs": runs,
        "memory_kib": memory,
        "warning_log_lines": warning_log_lines,
        "todos_after": todo_count,
        "incidents": incidents,
    }
    results["roundtrips"] = measure_roundtrips(plan, pipe, b, logs, scenarios)


def measure_roundtrips(
    plan: Plan, pipe: SqlPipe, b: Bake, logs: Path, scenarios: list[Scenario]
) -> dict[str, Any]:
    """Queries sent to PostgreSQL per request, through the counting proxy; then what
    the observed sequence of a read costs against its one SELECT, replayed directly."""
    parts = urllib.parse.urlsplit(b.url)
    proxy = CountingProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    direct = urllib.parse.urlsplit(database_url(b.url, b.database, sslmode="disable"))
    credentials = direct.netloc.rpartition("@")[0]
    netloc = (f"{credentials}@" if credentials else "") + f"127.0.0.1:{proxy.port}"
    proxied = Bake(
        b.label,
        b.path,
        b.database,
        urllib.parse.urlunsplit(direct._replace(netloc=netloc)),
        b.secret,
        b.celery,
    )
    out: dict[str, Any] = {"per_request": {}, "sequences": {}}
    web = None
    try:
        web = start_web(proxied, logs, "web-proxied", WEB_CONCURRENCY="1")
        n = plan.roundtrip_requests
        for scenario in scenarios:
            payload = {"title": "round trip", "done": False} if scenario.method == "POST" else None
            for _ in range(3):
                procs.http_request(scenario.method, web.port, scenario.path, payload)
            time.sleep(0.05)
            proxy.reset()
            for _ in range(n):
                procs.http_request(scenario.method, web.port, scenario.path, payload)
            time.sleep(0.1)
            counts, queries = proxy.snapshot()
            out["per_request"][scenario.key] = {kind: count / n for kind, count in counts.items()}
            per = len(queries) // n if n else 0
            out["sequences"][scenario.key] = queries[:per]
        progress(
            "round trips per request: "
            + ", ".join(f"{k} {v.get('Q', 0):g}" for k, v in out["per_request"].items())
        )
    finally:
        if web is not None:
            procs.stop(web)
        proxy.close()

    sequence = out["sequences"].get("get", [])
    main = [q for q in sequence if q.upper().startswith("SELECT") and "todos" in q]
    if sequence and main and len(sequence) <= 10:
        timings: dict[str, list[float]] = {"sequence": [], "select_only": []}
        cpu: dict[str, list[float]] = {"sequence": [], "select_only": []}
        backend = int(pipe.sql("replay", b.url, "SELECT pg_backend_pid()")[0][0])
        for _ in range(REPLAY_REPS):
            for key, statements in (("sequence", sequence), ("select_only", main)):
                server_before = procs.process_cpu(backend) or 0.0
                answer = pipe.ask(
                    {
                        "op": "replay",
                        "conn": "replay",
                        "url": b.url,
                        "statements": statements,
                        "seconds": REPLAY_SECONDS,
                        "max_loops": 20_000,
                    }
                )
                server_us = 1e6 * ((procs.process_cpu(backend) or 0.0) - server_before)
                timings[key].append(answer["us_per_loop"])
                loops = max(int(answer["loops"]), 1)
                cpu[key].append(answer["client_cpu_us_per_loop"] + server_us / loops)
        pipe.ask({"op": "close", "conn": "replay"})
        out["replay_us"] = timings
        out["replay_cpu_us"] = cpu
        progress(
            f"replayed read: {min(timings['sequence']):.0f} us for the observed "
            f"sequence vs {min(timings['select_only']):.0f} us for its SELECT alone (best runs)"
        )
    return out


def measure_startup(plan: Plan, b: Bake, logs: Path) -> list[float]:
    """Phase 4: process start to first 200 on /healthz, for the web line."""
    times = []
    for rep in range(plan.startup_reps):
        proc = launch_web(b, logs, "web-startup")
        try:
            times.append(procs.wait_for_200(proc, deadline=60))
        finally:
            procs.stop(proc)
        progress(f"start-up {rep + 1}/{plan.startup_reps}: {times[-1]:.3f} s")
    return times


# --------------------------------------------------------------------------- worker


def redis(*command: str) -> object:
    """One command on the bench's Redis database."""
    return procs.redis_command(REDIS_HOST, REDIS_PORT, REDIS_DB, *command)


def enqueue(port: int, ids: list[int]) -> int:
    """POST /api/todos/<id>/archive for each id (4 at a time); how many answered 202."""

    def one(todo_id: int) -> int:
        return procs.http_request("POST", port, f"/api/todos/{todo_id}/archive", timeout=10)[0]

    with ThreadPoolExecutor(max_workers=4) as pool:
        return sum(1 for status in pool.map(one, ids) if status == 202)


def measure_worker(plan: Plan, pipe: SqlPipe, b: Bake, logs: Path) -> dict[str, Any]:
    """Phase 5: drain plan.tasks archive tasks with 1 worker process, then 2; interleaved."""
    redis("FLUSHDB")
    ids = seed(pipe, b, plan.tasks)
    low, high = ids[0], ids[-1]
    web = start_web(b, logs, "web-celery")
    runs: dict[str, list[dict[str, float]]] = {"1": [], "2": []}
    memory: dict[str, int | None] = {}
    worker_command = procs.procfile_command(b.path, "worker")
    try:
        for rep in range(plan.worker_reps):
            for processes in (1, 2) if rep % 2 == 0 else (2, 1):
                pipe.sql(
                    b.label,
                    b.url,
                    "UPDATE todos SET archived_at = NULL WHERE id BETWEEN %s AND %s",
                    [low, high],
                )
                waiting = redis("LLEN", CELERY_QUEUE)
                if waiting:
                    raise RuntimeError(f"{waiting} tasks were left in the queue")
                started = time.monotonic()
                accepted = enqueue(web.port or 0, ids)
                enqueue_s = time.monotonic() - started
                queued = redis("LLEN", CELERY_QUEUE)
                if accepted != len(ids):
                    raise RuntimeError(f"only {accepted} of {len(ids)} archive requests got 202")
                workers = []
                for k in range(1, processes + 1):
                    workers.append(
                        procs.start(
                            f"worker{k}",
                            [*worker_command, "--hostname", f"bench{k}@%h"],
                            cwd=b.path,
                            env=b.env(WORKER_CONCURRENCY="1"),
                            log_path=logs / f"worker{k}.log",
                        )
                    )
                began = workers[0].started
                remaining, span = len(ids), None
                try:
                    stop_at = time.monotonic() + 120
                    while time.monotonic() < stop_at:
                        remaining, span = pipe.sql(
                            b.label,
                            b.url,
                            "SELECT count(*) FILTER (WHERE archived_at IS NULL), "
                            "extract(epoch FROM max(archived_at) - min(archived_at)) "
                            "FROM todos WHERE id BETWEEN %s AND %s",
                            [low, high],
                        )[0]
                        if remaining == 0:
                            break
                        for w in workers:
                            if w.popen.poll() is not None:
                                raise RuntimeError(f"{w.name} exited:\n{procs.tail(w.log_path)}")
                        time.sleep(0.05)
                    wall = time.monotonic() - began
                    if remaining:
                        raise RuntimeError(f"{remaining} todos still unarchived after 120 s")
                    # The middle 80% of the tasks, by archived_at: a steady-state rate that
                    # leaves out the second worker's later start and the last task's tail.
                    middle = pipe.sql(
                        b.label,
                        b.url,
                        "SELECT percentile_cont(ARRAY[0.1, 0.9]) WITHIN GROUP "
                        "(ORDER BY extract(epoch FROM archived_at)) "
                        "FROM todos WHERE id BETWEEN %s AND %s",
                        [low, high],
                    )[0][0]
                    middle_s = float(middle[1]) - float(middle[0])
                    if processes == 1 and not memory:
                        memory["celery worker (main)"] = procs.rss_kib(workers[0].pid)
                        for n, child in enumerate(procs.child_pids(workers[0].pid), 1):
                            memory[f"celery pool child {n}"] = procs.rss_kib(child)
                finally:
                    for w in workers:
                        procs.stop(w)
                span_s = float(span or 0)
                runs[str(processes)].append(
                    {
                        "wall_s": wall,
                        "span_s": span_s,
                        "tasks_per_s": (len(ids) - 1) / span_s if span_s else float("nan"),
                        "steady_tasks_per_s": 0.8 * len(ids) / middle_s
                        if middle_s
                        else float("nan"),
                        "enqueue_s": enqueue_s,
                        "queued": float(queued or 0),
                    }
                )
                progress(
                    f"worker rep {rep + 1}/{plan.worker_reps}, {processes} process(es): "
                    f"drained {len(ids)} in {wall:.2f} s from start "
                    f"(first to last task {span_s:.2f} s); enqueue took {enqueue_s:.2f} s"
                )
    finally:
        procs.stop(web)
        redis("FLUSHDB")
    return {"runs": runs, "memory_kib": memory}


# --------------------------------------------------------------------------- report


def machine_facts(
    loader: Loader, pipe: SqlPipe, admin_url: str, bakes: list[Bake]
) -> dict[str, str]:
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
        "PostgreSQL": str(pipe.sql("admin", admin_url, "SHOW server_version")[0][0]),
        "Redis": redis_version,
        "load generator": loader.name,
    }


def render(plan: Plan, facts: dict[str, str], results: dict[str, Any], wall_s: float) -> str:
    """The Markdown report."""
    out: list[str] = []
    add = out.append
    web = results["web"]
    runs = web["runs"]
    labels = web["labels"]
    rps = {key: [r["rps"] for r in values] for key, values in runs.items()}
    rps_m = {key: median(values) for key, values in rps.items()}

    def paired(numerator: str, denominator: str, measure: str = "rps") -> str:
        """Ratio of the medians, and the median of the ratios of runs of the same round."""
        top = [r[measure] for r in runs[numerator]]
        bottom = [r[measure] for r in runs[denominator]]
        same_round = [ratio(a, b) for a, b in zip(top, bottom, strict=False)]
        return f"{fmt(ratio(median(top), median(bottom)), 2)} ({fmt(median(same_round), 2)})"

    add("# Benchmark of the baked services" + (" (BENCH_QUICK=1 smoke run)" if plan.quick else ""))
    add("")
    add(
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}; total wall time {wall_s:.0f} s. "
        "Medians of interleaved runs in one session; compare ratios, not absolute numbers, "
        "across machines."
    )
    add("")
    add(table(["fact", "value"], [[k, v] for k, v in facts.items()], numeric_from=2))
    add("")
    add("## Web: default bake, `web` line, WEB_CONCURRENCY=2 (sync workers), LOG_LEVEL=WARNING")
    add("")
    add(
        f"{plan.web_reps} run(s) of {plan.duration:g} s per scenario, round-robin in the "
        "order of the table, backwards every other round; "
        f"{plan.wrk_threads} load threads, {plan.wrk_connections} "
        f"connections; {plan.seed_todos:,} todos seeded ({web['todos_after']:,} after the POST "
        "runs). The [LOG_LEVEL=INFO] rows hit a second, identical web process that logs every "
        "request, each run next to its WARNING twin."
    )
    add("")
    rows = []
    for key, values in runs.items():
        rows.append(
            [
                labels[key],
                *spread(rps[key], 0),
                fmt(median(r["p50_ms"] for r in values), 2),
                fmt(median(r["p99_ms"] for r in values), 2),
                fmt(sum(r["errors"] for r in values)),
                fmt(median(r["ours_cpu_pct"] for r in values), 0),
                fmt(median(r["others_cpu_pct"] for r in values), 0),
            ]
        )
    headers = [
        "scenario",
        "req/s median",
        "min",
        "max",
        "runs",
        "p50 ms",
        "p99 ms",
        "errors",
        "CPU % ours",
        "CPU % others",
    ]
    add(table(headers, rows))
    add("")
    every_other = [r["others_cpu_pct"] for values in runs.values() for r in values]
    add(
        "p50 and p99 are the medians over the runs of each run's percentile; errors are "
        "socket errors, timeouts and non-2xx answers, summed over the runs. CPU % is the "
        "share of the whole machine (all cores) during the run, median over the runs: *ours* "
        "is the web processes, their PostgreSQL backends, wrk and the harness; *others* is "
        "everything else on this shared machine (it ranged "
        f"{fmt(min(every_other), 0)} to {fmt(max(every_other), 0)}% over the runs)."
    )
    add("")
    add("### CPU time per request")
    add("")
    add(
        "CPU microseconds per request, median over the runs, measured from `/proc`: the "
        "gunicorn processes (*web*), the PostgreSQL backends serving them (*postgres*) and "
        "wrk with the harness (*load generator*). Unlike req/s, these hardly depend on what "
        "else the machine is doing, so they are the figures to compare between scenarios."
    )
    add("")
    cpu_rows = []
    for key, values in runs.items():
        parts = {
            name: median(r["cpu_us_per_request"].get(name, float("nan")) for r in values)
            for name in ("web", "postgres", "load generator")
        }
        cpu_rows.append(
            [labels[key], *(fmt(value, 0) for value in parts.values()), fmt(sum(parts.values()), 0)]
        )
    add(table(["scenario", "web µs", "postgres µs", "load generator µs", "total µs"], cpu_rows))
    add("")
    add("### Ratios")
    add("")
    add(
        "Each cell: the ratio of the medians, and in brackets the median of the ratios of "
        "runs from the same round (the more robust one when the machine's load drifts). "
        "*Throughput* divides req/s; *cost* divides the CPU per request of the web processes "
        "plus their PostgreSQL backends, which noise from other processes hardly moves."
    )
    add("")
    log_bytes = median(r["log_bytes_per_request"] for r in runs["healthz_info"])
    comparisons = [
        ("deep page vs first page (contract: ≈ 1)", "deep", "first"),
        (f"deep page vs page 2 (cursor after {plan.page_size}): depth alone, ≈ 1", "deep", "page2"),
        ("page 2 vs first page: the price of using a cursor", "page2", "first"),
        ("GET one todo vs GET /healthz: the database path", "get", "healthz"),
        ("first page vs GET one todo: 20 rows instead of 1", "first", "get"),
        ("POST vs GET one todo: a committed write instead of a read", "post", "get"),
        (
            f"GET /healthz, LOG_LEVEL=INFO vs WARNING ({log_bytes:.0f} log bytes/request)",
            "healthz_info",
            "healthz",
        ),
        ("first page, LOG_LEVEL=INFO vs WARNING", "first_info", "first"),
    ]
    ratio_rows = [
        [label, paired(a, b), paired(a, b, "service_cpu_us")] for label, a, b in comparisons
    ]
    add(table(["comparison", "throughput ratio", "cost ratio"], ratio_rows))
    add("")
    add(
        f"With LOG_LEVEL=WARNING the web process wrote {web['warning_log_lines']} log lines "
        "in all its runs (access lines are INFO)."
    )
    add("")

    if web["incidents"]:
        add("**Incidents** (each failed run was discarded and redone on a fresh process):")
        add("")
        out.extend(f"- {incident}" for incident in web["incidents"])
        add("")

    rt = results.get("roundtrips", {})
    if rt:
        add("## Database round trips per request (counting proxy, 1 worker, sequential)")
        add("")
        rows = []
        for key, counts in rt["per_request"].items():
            sequence = rt["sequences"].get(key, [])
            shown = (
                "; ".join(f"`{q[:40]}`" for q in sequence)
                if len(sequence) <= 6
                else f"{len(sequence)} statements"
            )
            rows.append([labels[key], fmt(counts.get("Q", 0.0), 1), shown or "-"])
        add(
            table(
                ["scenario", "queries (round trips) per request", "what one request sends"],
                rows,
                numeric_to=2,
            )
        )
        add("")
        if "replay_us" in rt:
            seq, one = min(rt["replay_us"]["sequence"]), min(rt["replay_us"]["select_only"])
            seq_cpu = min(rt["replay_cpu_us"]["sequence"])
            one_cpu = min(rt["replay_cpu_us"]["select_only"])
            get_cpu = median(r["service_cpu_us"] for r in runs["get"])
            per_request_us = 1e6 * 2 / rps_m["get"]  # two workers share the median rate
            cpu_share = fmt(100 * ratio(seq_cpu - one_cpu, get_cpu), 0)
            time_share = fmt(100 * ratio(seq - one, per_request_us), 0)
            add(
                "Price of the extra round trips: one read's observed sequence, replayed "
                "straight on psycopg2 (no web, no ORM; best of "
                f"{len(rt['replay_us']['sequence'])} runs), takes {seq:.0f} µs of wall time "
                f"and {seq_cpu:.0f} µs of CPU (client and server) against {one:.0f} µs and "
                f"{one_cpu:.0f} µs for its SELECT alone. Under load, GET one todo costs "
                f"{get_cpu:,.0f} µs of CPU per request (web + postgres) and a worker spends "
                f"{per_request_us:,.0f} µs of wall time per request (2 workers at the median "
                f"rate), so the extra round trips are {cpu_share}% of its CPU and "
                f"{time_share}% of its time."
            )
            add("")

    w = results.get("worker")
    if w:
        add(
            f"## Worker: celery bake, {plan.tasks} archive tasks enqueued through the API, "
            "then drained"
        )
        add("")
        add(
            "Each worker process is the `worker` line with WORKER_CONCURRENCY=1 and "
            "`--hostname benchN@%h`; runs alternate 1 and 2 processes. *From start*: worker "
            "start-up until every todo has `archived_at` (polled every 50 ms); *first to last "
            "task*: spread of `archived_at` in the database, i.e. pure drain time."
        )
        add("")
        rows = []
        for processes, values in w["runs"].items():
            rows.append(
                [
                    f"{processes} worker process(es): from start, s",
                    *spread([r["wall_s"] for r in values], 2),
                ]
            )
            rows.append(
                [
                    f"{processes} worker process(es): first to last task, s",
                    *spread([r["span_s"] for r in values], 2),
                ]
            )
            rows.append(
                [
                    f"{processes} worker process(es): tasks/s, first to last",
                    *spread([r["tasks_per_s"] for r in values], 0),
                ]
            )
            rows.append(
                [
                    f"{processes} worker process(es): tasks/s, middle 80%",
                    *spread([r["steady_tasks_per_s"] for r in values], 0),
                ]
            )
        enqueue_s = [r["enqueue_s"] for values in w["runs"].values() for r in values]
        rows.append(
            [f"enqueue {plan.tasks} via POST …/archive (4 clients), s", *spread(enqueue_s, 2)]
        )
        add(table(["measure", "median", "min", "max", "runs"], rows))
        add("")
        one, two = w["runs"]["1"], w["runs"]["2"]

        def speedup(measure: str, faster_is_bigger: bool) -> str:
            a, b = median(r[measure] for r in one), median(r[measure] for r in two)
            return fmt(ratio(b, a) if faster_is_bigger else ratio(a, b), 2)

        speedups = [
            [
                "steady drain rate (tasks/s, middle 80% of the tasks)",
                speedup("steady_tasks_per_s", True),
            ],
            ["drain, first to last task", speedup("span_s", False)],
            ["from start (includes Celery's start-up)", speedup("wall_s", False)],
        ]
        add(table(["speed-up, 2 processes vs 1 (2.0 = perfect)", "value"], speedups))
        add("")

    add("## Memory (VmRSS)")
    add("")
    rows = [[name, fmt((kib or 0) / 1024, 1)] for name, kib in web["memory_kib"].items()]
    if w:
        rows += [[name, fmt((kib or 0) / 1024, 1)] for name, kib in w["memory_kib"].items()]
    add(table(["process", "MiB"], rows))
    add("")
    add("Gunicorn figures are after the web load; celery figures after a 1-process drain.")
    add("")
    add("## Start-up of the `web` line (process start → first 200 on /healthz)")
    add("")
    add(
        table(
            ["measure", "median", "min", "max", "runs"],
            [["seconds", *spread(results["startup_s"], 3)]],
        )
    )
    add("")
    return "\n".join(out)


# --------------------------------------------------------------------------- main


def main() -> int:
    """Run every phase; always stop what was started and drop what was created."""
    plan = Plan.from_environment()
    admin_url = os.environ.get("TEST_DATABASE_URL", DEFAULT_DATABASE_URL)
    keep = os.environ.get("BENCH_KEEP", "") not in ("", "0")
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    logs = work / "logs"
    logs.mkdir()
    results: dict[str, Any] = {"plan": asdict(plan)}
    pipe: SqlPipe | None = None
    bakes: list[Bake] = []

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    progress(f"plan: {'quick' if plan.quick else 'full'}; work dir {work}")
    try:
        procs.redis_command(REDIS_HOST, REDIS_PORT, REDIS_DB, "PING")
        loader = Loader(plan)
        progress(f"load generator: {loader.name}")
        bakes = [bake(work, "default", {}), bake(work, "celery", {"worker": "celery"})]
        progress("baked the default and the worker=celery projects; make install in both")
        make_install(bakes, logs)
        progress("installed")
        pipe = SqlPipe(bakes[0].bin / "python")
        stamp = secrets.token_hex(4)
        for b in bakes:
            b.database = f"bench_{stamp}_{b.label}"
            pipe.sql("admin", admin_url, f'CREATE DATABASE "{b.database}"')
            b.url = database_url(admin_url, b.database)
            progress(f"database {b.database}: release line took {run_release(b, logs):.2f} s")
        facts = machine_facts(loader, pipe, admin_url, bakes)

        measure_web(plan, loader, pipe, bakes[0], logs, results)
        results["startup_s"] = measure_startup(plan, bakes[0], logs)
        results["worker"] = measure_worker(plan, pipe, bakes[1], logs)
        for b in bakes:
            pipe.ask({"op": "close", "conn": b.label})

        wall = time.monotonic() - T0
        results["facts"] = facts
        results["wall_s"] = wall
        text = render(plan, facts, results, wall)
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        (RESULTS_DIR / "latest.md").write_text(text + "\n", encoding="utf-8")
        (RESULTS_DIR / "latest.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(text, flush=True)
        progress(
            f"done in {wall:.0f} s; report in {RESULTS_DIR.relative_to(TEMPLATE_DIR)}/latest.md"
        )
        return 0
    except (Exception, KeyboardInterrupt) as error:
        progress(f"FAILED: {type(error).__name__}: {error}")
        progress(f"logs of the processes: {logs}" + ("" if keep else " (kept for reading)"))
        keep = True
        return 1
    finally:
        if procs.RUNNING:
            progress(f"stopping {len(procs.RUNNING)} process(es) still running")
        procs.stop_all()
        progress("dropping the databases, emptying Redis db 14, removing the work dir")
        if pipe is not None:
            for b in bakes:
                if b.database:
                    with contextlib.suppress(Exception):
                        pipe.ask({"op": "close", "conn": b.label})
                    with contextlib.suppress(Exception):
                        pipe.sql(
                            "admin",
                            admin_url,
                            f'DROP DATABASE IF EXISTS "{b.database}" WITH (FORCE)',
                        )
            pipe.close()
        with contextlib.suppress(Exception):
            procs.redis_command(REDIS_HOST, REDIS_PORT, REDIS_DB, "FLUSHDB")
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
        progress(f"cleaned up; {time.monotonic() - T0:.0f} s in all")
