"""Processes, ports, HTTP and memory: what the harness needs to run the real thing.

Every process the harness starts goes through `start()`: it gets its own process group
and is recorded, so `stop()` (or `stop_all()` on the way out) ends it and its children
by PID and process group, never by name.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

# Variables of the process running the harness that must not leak into a baked project's
# make or processes (our venv, our make's flags, pytest's options). PYTHONDONTWRITEBYTECODE,
# set on some machines, would have every start compile the project's code again, which
# neither a user's machine nor the image (it ships the bytecode) does: 3% of the web line's
# start-up (in instructions), where each baseline has one file to compile.
FOREIGN_VARIABLES = (
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONDONTWRITEBYTECODE",
    "MAKEFLAGS",
    "MFLAGS",
    "MAKELEVEL",
)
FOREIGN_PREFIXES = ("PYTEST_",)


def clean_environment(extra_path: str | None = None) -> dict[str, str]:
    """This process's environment without what belongs to the harness itself."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in FOREIGN_VARIABLES and not name.startswith(FOREIGN_PREFIXES)
    }
    if extra_path:
        env["PATH"] = f"{extra_path}{os.pathsep}{env.get('PATH', '')}"
    return env


def service_variables(project: Path) -> set[str]:
    """Every variable the baked service reads, as its .env.example documents them."""
    names = set()
    for line in (project / ".env.example").read_text(encoding="utf-8").splitlines():
        name, sep, _ = line.lstrip("# ").partition("=")
        if sep and name.isupper() and name.replace("_", "").isalnum():
            names.add(name)
    names |= {f"{name}_FILE" for name in ("DATABASE_URL", "SECRET_KEY", "REDIS_URL")}
    return names


def procfile_command(project: Path, process_type: str) -> list[str]:
    """One Procfile line as an argument list, read as the baked tests read it."""
    for line in (project / "Procfile").read_text(encoding="utf-8").splitlines():
        name, _, command_line = line.partition(":")
        if name.strip() == process_type:
            return command_line.split()
    raise LookupError(f"{project / 'Procfile'} has no {process_type!r} line")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Proc:
    """A process the harness started, in its own process group."""

    name: str
    popen: subprocess.Popen[bytes]
    started: float
    log_path: Path | None = None
    port: int | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        """The process id (also its process group id)."""
        return self.popen.pid


RUNNING: list[Proc] = []
# Every process ever started, for the report's check that none outlived the run.
STARTED: list[Proc] = []


def start(
    name: str,
    command: list[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    log_path: Path,
    port: int | None = None,
) -> Proc:
    """Start a process in a new session, its output appended to log_path (never a pipe)."""
    path = env.get("PATH", "")
    executable = None
    for folder in path.split(os.pathsep):
        candidate = Path(folder) / command[0]
        if folder and candidate.is_file() and os.access(candidate, os.X_OK):
            executable = str(candidate)
            break
    if executable is None:
        raise FileNotFoundError(f"{command[0]} is not on the PATH given to {name}")
    with log_path.open("ab") as log:
        popen = subprocess.Popen(  # noqa: S603 - a Procfile command of a project we baked
            [executable, *command[1:]],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    proc = Proc(name, popen, time.monotonic(), log_path, port)
    RUNNING.append(proc)
    STARTED.append(proc)
    return proc


def _signal_group(proc: Proc, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signum)


def stop(proc: Proc, timeout: float = 20) -> int | None:
    """SIGTERM the process and its group; SIGKILL the group if it lingers. Its exit code."""
    if proc.popen.poll() is None:
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.popen.wait(timeout=10)
    # Children that outlived their parent would still be in the group.
    deadline = time.monotonic() + 5
    while group_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if group_members(proc.pid):
        _signal_group(proc, signal.SIGKILL)
    if proc in RUNNING:
        RUNNING.remove(proc)
    return proc.popen.returncode


def stop_all() -> None:
    """Stop every process still recorded as running, newest first."""
    for proc in reversed(list(RUNNING)):
        stop(proc, timeout=10)


def _stat_fields(pid_dir: Path) -> list[str] | None:
    try:
        return (pid_dir / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is pgid."""
    members = []
    for pid_dir in Path("/proc").glob("[0-9]*"):
        fields = _stat_fields(pid_dir)
        # After the name: state, ppid, pgrp, ...
        if fields and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(pid_dir.name))
    return members


def members_of_groups(pgids: set[int]) -> set[int]:
    """Live (non-zombie) processes whose process group is one of pgids, in one look at /proc."""
    members = set()
    for pid_dir in Path("/proc").glob("[0-9]*"):
        fields = _stat_fields(pid_dir)
        if fields and fields[0] != "Z" and int(fields[2]) in pgids:
            members.add(int(pid_dir.name))
    return members


def child_pids(pid: int) -> list[int]:
    """The live processes whose parent is pid."""
    children = []
    for pid_dir in Path("/proc").glob("[0-9]*"):
        fields = _stat_fields(pid_dir)
        if fields and fields[0] != "Z" and int(fields[1]) == pid:
            children.append(int(pid_dir.name))
    return sorted(children)


def settled_children(
    pid: int, polls: int = 5, interval: float = 0.1, deadline: float = 10
) -> list[int]:
    """A process's children once the list has stayed the same for `polls` polls in a row.

    A server answers its first 200 as soon as one worker is up; gunicorn may still be
    forking the next (at once with preload_app, as the web line does), and a list read
    then would make the later, complete one look like a worker lost and replaced."""
    stop_at = time.monotonic() + deadline
    children, same = child_pids(pid), 0
    while same < polls and time.monotonic() < stop_at:
        time.sleep(interval)
        now = child_pids(pid)
        same = same + 1 if now == children else 0
        children = now
    return children


def rss_kib(pid: int, field: str = "VmRSS") -> int | None:
    """Resident set size of a process in KiB: now (VmRSS) or its peak (VmHWM)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def smaps_kib(pid: int, *fields: str) -> int | None:
    """The sum of these fields of /proc/PID/smaps_rollup, in KiB (None if it cannot be read)."""
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return None
    found = [int(line.split()[1]) for line in lines if line.split(":", 1)[0] in fields]
    return sum(found) if len(found) == len(fields) else None


def pss_kib(pid: int) -> int | None:
    """Proportional set size in KiB: resident pages, each shared page divided by the number
    of processes sharing it. Summed over a master and its forked workers, it counts the
    pages they share once, where RSS counts them in every process."""
    return smaps_kib(pid, "Pss")


def uss_kib(pid: int) -> int | None:
    """Unique set size in KiB: the resident pages no other process shares, what stopping
    this process alone would free."""
    return smaps_kib(pid, "Private_Clean", "Private_Dirty")


def http_request(
    method: str,
    port: int,
    path: str,
    payload: object = None,
    timeout: float = 10,
) -> tuple[int, bytes]:
    """One request to 127.0.0.1:port; the status and body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {}
        body = None
        if payload is not None:
            body = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_for_200(proc: Proc, path: str = "/healthz", deadline: float = 60) -> float:
    """Poll until the process answers 200 on path; seconds since it was started."""
    if proc.port is None:
        raise ValueError(f"{proc.name} was started without a port")
    stop_at = time.monotonic() + deadline
    while time.monotonic() < stop_at:
        if proc.popen.poll() is not None:
            raise RuntimeError(
                f"{proc.name} exited with {proc.popen.returncode} before serving; "
                f"see {proc.log_path}:\n{tail(proc.log_path)}"
            )
        with contextlib.suppress(OSError, http.client.HTTPException):
            if http_request("GET", proc.port, path, timeout=2)[0] == 200:
                return time.monotonic() - proc.started
        time.sleep(0.01)
    raise TimeoutError(f"{proc.name} did not answer 200 on {path} within {deadline} s")


def tail(path: Path | None, lines: int = 30) -> str:
    """The last lines of a log file."""
    if path is None or not path.exists():
        return ""
    text = path.read_text(encoding="utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def redis_command(url_host: str, port: int, db: int, *command: str) -> object:
    """Send SELECT db and one command over RESP; the command's reply (int, str or list)."""

    def encode(*parts: str) -> bytes:
        out = [f"*{len(parts)}\r\n".encode()]
        for part in parts:
            data = part.encode()
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
        return b"".join(out)

    with socket.create_connection((url_host, port), timeout=5) as sock:
        sock.sendall(encode("SELECT", str(db)) + encode(*command))
        reader = sock.makefile("rb")

        def read() -> object:
            line = reader.readline().rstrip(b"\r\n")
            kind, rest = line[:1], line[1:].decode()
            if kind == b"+":
                return rest
            if kind == b"-":
                raise RuntimeError(f"redis: {rest}")
            if kind == b":":
                return int(rest)
            if kind == b"$":
                size = int(rest)
                if size < 0:
                    return None
                data = reader.read(size + 2)[:-2]
                return data.decode(errors="replace")
            if kind == b"*":
                return [read() for _ in range(int(rest))]
            raise RuntimeError(f"redis: unexpected reply {line!r}")

        selected = read()
        if selected != "OK":
            raise RuntimeError(f"redis: SELECT {db} answered {selected!r}")
        return read()


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[float, float]:
    """CPU seconds since boot, summed over all CPUs: (busy, total), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:9]
    user, nice, system, idle, iowait, irq, softirq, steal = (int(value) for value in fields)
    total = user + nice + system + idle + iowait + irq + softirq + steal
    return (total - idle - iowait) / CLOCK_TICKS, total / CLOCK_TICKS


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) a process has used, or None if it is gone."""
    fields = _stat_fields(Path(f"/proc/{pid}"))
    if not fields:
        return None
    # After the name: state is field 3 of stat, so utime (14) and stime (15) are 11 and 12 here.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class CpuMeter:
    """How the machine's CPU was spent during a block: by each group of our processes
    (name -> pids, asked before and after), by this process and the children it waited
    for (such as wrk) as "load generator", and by everything else on the machine."""

    def __init__(self, groups: Callable[[], dict[str, set[int]]]) -> None:
        self.groups = groups
        self.seconds: dict[str, float] = {}
        self.ours_pct = float("nan")
        self.others_pct = float("nan")

    def __enter__(self) -> CpuMeter:
        self.before_groups = self.groups()
        self.before = {
            pid: process_cpu(pid) for pids in self.before_groups.values() for pid in pids
        }
        self.times = os.times()
        self.machine = machine_cpu()
        return self

    def __exit__(self, *_exc: object) -> None:
        busy, total = machine_cpu()
        times = os.times()
        self.seconds = {
            "load generator": (
                times.user + times.system + times.children_user + times.children_system
            )
            - (
                self.times.user
                + self.times.system
                + self.times.children_user
                + self.times.children_system
            )
        }
        after_groups = self.groups()
        for name in after_groups.keys() | self.before_groups.keys():
            used = 0.0
            for pid in after_groups.get(name, set()) | self.before_groups.get(name, set()):
                after = process_cpu(pid)
                if after is not None:
                    used += after - (self.before.get(pid) or 0.0)
            self.seconds[name] = used
        ours = sum(self.seconds.values())
        span = total - self.machine[1]
        if span > 0:
            self.ours_pct = 100 * ours / span
            self.others_pct = max(0.0, 100 * (busy - self.machine[0] - ours) / span)
