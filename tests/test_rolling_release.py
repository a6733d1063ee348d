"""A release with a schema change rolled out under load, and rolled back, losing nothing.

The default project (conftest.py's `installed_project`) is release N. Release N+1 is a copy
of it with the worked example of its guide page docs/factors/schema-changes.md applied: an
expand migration (a nullable `notes` column) and the code that serves the field. Both run
from the installed .venv, each copy's src/ first on PYTHONPATH, on a throwaway database.

Two web processes of a release (the Procfile's `web` line) serve behind HAProxy (Debian's
package), which checks `/readyz` on each. A bounded load of writes and reads runs against
HAProxy throughout. Forward: N+1's `release` process runs while N serves; N+1's two web
processes start and HAProxy sees them up; then N's get SIGTERM one at a time, each drained
out of HAProxy and exiting 0. Back: N's code starts again on the expanded schema and N+1's
processes are stopped the same way. Each way: no request fails or is reset, every write
acknowledged is in the database, and the field is served by the release that knows it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest

from baked_project import BakedProject
from rolling_load import Load, Tally

pytestmark = pytest.mark.baked

GUIDE_PAGE = Path("docs") / "factors" / "schema-changes.md"
DIFF_BLOCK = re.compile(r"^```diff\n(.*?)^```$", re.MULTILINE | re.DOTALL)
# .ci/run sets it: there, no HAProxy is a failure, not a skip.
REQUIRE_VARIABLE = "TEMPLATE_REQUIRE_HAPROXY"
# The service's own default (DRAIN_SECONDS) is what this proves. HAProxy checks /readyz
# every CHECK_INTERVAL and takes a server out after FALL failures: within about a second of
# the drain's start, well inside its 5 s, so no request is sent to a process that has
# stopped accepting. RISE passes bring a new process in.
DRAIN_SECONDS = 5
GRACEFUL_TIMEOUT = 20
CHECK_INTERVAL_MS = 500
FALL = 2
RISE = 2
# Load on one release alone before the rollout begins, and on the new one after it ends.
SETTLE_SECONDS = 1.5


def haproxy() -> str:
    """HAProxy's binary, or a skip (a failure where REQUIRE_VARIABLE is set)."""
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/sbin")
    if found is None:
        message = "HAProxy is not installed (Debian: apt-get install haproxy)"
        if os.environ.get(REQUIRE_VARIABLE):
            pytest.fail(f"{message}; {REQUIRE_VARIABLE} is set, so this may not skip")
        pytest.skip(message)
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stop_by_pid(process: subprocess.Popen[bytes], stop_signal: int = signal.SIGTERM) -> None:
    """Stop a process this test started, by its PID, if it still runs."""
    if process.poll() is None:
        process.send_signal(stop_signal)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def throwaway_database(admin_url: str) -> Iterator[str]:
    """A new, empty database on the test server, dropped afterwards: its URL."""
    name = f"rollout_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name}")
        yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


@dataclass
class Release:
    """One release's code (a copy of the project) and the environment its processes get."""

    name: str
    path: Path
    env: dict[str, str]

    def procfile(self, process_type: str) -> list[str]:
        """A Procfile line's command, its program found in the shared .venv."""
        for line in (self.path / "Procfile").read_text(encoding="utf-8").splitlines():
            name, _, command = line.partition(":")
            if name.strip() == process_type:
                program, *arguments = command.split()
                found = shutil.which(program, path=self.env["PATH"])
                assert found, f"{program} is not in the project's .venv"
                return [found, *arguments]
        raise LookupError(f"the Procfile has no {process_type!r} line")

    def release_step(self) -> subprocess.CompletedProcess[str]:
        """Run the Procfile's `release` line to completion."""
        return subprocess.run(
            self.procfile("release"),
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


class Rollout:
    """HAProxy and the web processes behind it; every process started is stopped by PID."""

    def __init__(self, workdir: Path, haproxy_binary: str) -> None:
        self.workdir = workdir
        self.haproxy_binary = haproxy_binary
        self.port = free_port()
        self.socket_path = workdir / "haproxy.sock"
        self.slots: dict[str, int] = {}
        self.webs: dict[str, subprocess.Popen[bytes]] = {}
        self.balancer: subprocess.Popen[bytes] | None = None

    def start_web(self, slot: str, release: Release) -> subprocess.Popen[bytes]:
        """Start a web process of a release on the slot's port, its output in a log file."""
        env = {**release.env, "PORT": str(self.slots[slot]), "RELEASE_ID": release.name}
        with (self.workdir / f"{slot}-{release.name}.log").open("ab") as log:
            process = subprocess.Popen(
                release.procfile("web"), cwd=release.path, env=env, stdout=log, stderr=log
            )
        self.webs[slot] = process
        return process

    def wait_ready(self, slot: str, timeout: float = 60) -> None:
        """Wait until the slot's process answers its /readyz with 200."""
        process, port = self.webs[slot], self.slots[slot]
        stop_at = time.monotonic() + timeout
        while time.monotonic() < stop_at:
            assert process.poll() is None, f"{slot} exited {process.returncode} before serving"
            with contextlib.suppress(OSError):
                if self._ready(port):
                    return
            time.sleep(0.1)
        raise AssertionError(f"{slot} was not ready within {timeout} s")

    @staticmethod
    def _ready(port: int) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", "/readyz")
            return connection.getresponse().status == 200
        finally:
            connection.close()

    def start_balancer(self, serving: list[str], waiting: list[str]) -> None:
        """HAProxy with a server per slot: those serving in service, the others in
        maintenance until enabled (a server leaving maintenance counts as up at once)."""
        servers = [
            f"    server {slot} 127.0.0.1:{self.slots[slot]} check"
            + ("" if slot in serving else " disabled")
            for slot in [*serving, *waiting]
        ]
        config = self.workdir / "haproxy.cfg"
        config.write_text(
            "\n".join(
                [
                    "global",
                    f"    stats socket {self.socket_path} mode 600 level admin",
                    "defaults",
                    "    mode http",
                    "    timeout connect 2s",
                    "    timeout client 30s",
                    f"    timeout server {GRACEFUL_TIMEOUT + 10}s",
                    "frontend todos",
                    f"    bind 127.0.0.1:{self.port}",
                    "    default_backend web",
                    "backend web",
                    "    balance roundrobin",
                    "    option httpchk GET /readyz",
                    "    http-check expect status 200",
                    f"    default-server inter {CHECK_INTERVAL_MS}ms fall {FALL} rise {RISE}",
                    *servers,
                    "",
                ]
            ),
            encoding="utf-8",
        )
        with (self.workdir / "haproxy.log").open("ab") as log:
            self.balancer = subprocess.Popen(
                [self.haproxy_binary, "-db", "-f", str(config)], stdout=log, stderr=log
            )
        for slot in serving:
            self.wait_for(slot, "UP")

    def admin(self, command: str) -> str:
        """A command to HAProxy's runtime API, and its answer."""
        with socket.socket(socket.AF_UNIX) as connection:
            connection.settimeout(5)
            connection.connect(str(self.socket_path))
            connection.sendall(command.encode() + b"\n")
            answer = b""
            while chunk := connection.recv(65536):
                answer += chunk
        return answer.decode()

    def status(self, slot: str) -> str:
        """HAProxy's status of a slot's server: UP, DOWN, MAINT, or a transition."""
        lines = self.admin("show stat").splitlines()
        columns = lines[0].lstrip("# ").split(",")
        for line in lines[1:]:
            row = dict(zip(columns, line.split(","), strict=False))
            if row.get("pxname") == "web" and row.get("svname") == slot:
                return row["status"]
        raise LookupError(f"HAProxy has no server {slot}")

    def wait_for(self, slot: str, wanted: str, timeout: float = 15) -> float:
        """Wait until HAProxy gives the slot that status; the seconds it took."""
        started = time.monotonic()
        status = ""
        while time.monotonic() - started < timeout:
            with contextlib.suppress(OSError):
                status = self.status(slot)
                if status == wanted:
                    return time.monotonic() - started
            time.sleep(0.05)
        raise AssertionError(f"HAProxy shows {slot} as {status!r}, not {wanted}, after {timeout} s")

    def bring_in(self, slots: list[str], release: Release) -> None:
        """Start web processes of the release in these slots, and once each is ready, put it
        into HAProxy and wait until HAProxy's own checks find it up."""
        for slot in slots:
            if self.status(slot) != "MAINT":
                self.admin(f"disable server web/{slot}")
            self.start_web(slot, release)
        for slot in slots:
            self.wait_ready(slot)
            self.admin(f"enable server web/{slot}")
            self.wait_for(slot, "UP")

    def take_out(self, slots: list[str]) -> list[tuple[float, int]]:
        """SIGTERM each slot's process, the next once HAProxy has seen the last one down;
        then wait for them all. For each: the seconds HAProxy took, and its exit code."""
        seen_down = []
        for slot in slots:
            self.webs[slot].send_signal(signal.SIGTERM)
            seen_down.append(self.wait_for(slot, "DOWN", timeout=DRAIN_SECONDS + 10))
        codes = []
        for slot in slots:
            codes.append(self.webs[slot].wait(timeout=DRAIN_SECONDS + GRACEFUL_TIMEOUT + 5))
            del self.webs[slot]
        return list(zip(seen_down, codes, strict=True))

    def close(self) -> None:
        """Stop every process still running, by PID: the web processes with SIGINT, which
        stops gunicorn at once (the rollout is over: there is nothing left to drain for)."""
        for process in self.webs.values():
            stop_by_pid(process, signal.SIGINT)
        if self.balancer is not None:
            stop_by_pid(self.balancer)


def worked_example(project: Path) -> list[str]:
    """The diffs of the guide's worked example, in the page's order."""
    page = (project / GUIDE_PAGE).read_text(encoding="utf-8")
    return [block.group(1) for block in DIFF_BLOCK.finditer(page)]


def make_release(installed: BakedProject, name: str, path: Path, database_url: str) -> Release:
    """A copy of the installed project, run with its .venv and this release's code first."""
    shutil.copytree(installed.path, path, ignore=shutil.ignore_patterns(".venv", "*_cache"))
    bin_dir = installed.path / ".venv" / "bin"
    env = {
        **installed.env,
        "PATH": f"{bin_dir}{os.pathsep}{installed.env['PATH']}",
        "PYTHONPATH": str(path / "src"),
        "DATABASE_URL": database_url,
        "SECRET_KEY": "rolling-release-test-secret",
        "WEB_CONCURRENCY": "1",
        "DRAIN_SECONDS": str(DRAIN_SECONDS),
        "GRACEFUL_TIMEOUT": str(GRACEFUL_TIMEOUT),
        "LOG_LEVEL": "WARNING",
    }
    return Release(name, path, env)


def unacknowledged(tally: Tally, database_url: str) -> dict[int, str]:
    """The writes the load was told succeeded that the database does not hold as told."""
    with (
        contextlib.closing(psycopg2.connect(database_url)) as connection,
        connection.cursor() as cursor,
    ):
        ids = list(tally.acknowledged)
        cursor.execute("SELECT id, title FROM todos WHERE id = ANY(%s)", (ids,))
        stored = dict(cursor.fetchall())
    return {key: title for key, title in tally.acknowledged.items() if stored.get(key) != title}


@dataclass
class Rolled:
    """One direction of the rollout: what the load got, and how the old processes stopped."""

    label: str
    tally: Tally
    lost: dict[int, str]
    stops: list[tuple[float, int]]
    took_over: float
    seconds: float

    def figures(self) -> str:
        """The figures of the report, printed with -s and shown on failure."""
        found = len(self.tally.acknowledged) - len(self.lost)
        return (
            f"{self.label}: {self.tally.figures()}, found {found}, in {self.seconds:.1f} s; "
            f"old processes out of HAProxy after {[round(s, 2) for s, _ in self.stops]} s, "
            f"exit codes {[code for _, code in self.stops]}; "
            f"first failures: {self.tally.failures}"
        )

    def reads_after_takeover(self) -> list[dict[str, object]]:
        """The todos read by requests sent once the new release alone served."""
        return [read.todo for read in self.tally.reads if read.sent_at > self.took_over]


def roll(
    rollout: Rollout,
    label: str,
    release: Release,
    *,
    bring_in: list[str],
    take_out: list[str],
    database_url: str,
    run_release_step: bool,
) -> Rolled:
    """Under load: the release step if asked, the new processes in, the old ones out."""
    started = time.monotonic()
    with Load(rollout.port, label) as load:
        time.sleep(SETTLE_SECONDS)
        if run_release_step:
            released = release.release_step()
            assert released.returncode == 0, released.stderr
        rollout.bring_in(bring_in, release)
        stops = rollout.take_out(take_out)
        took_over = time.monotonic()
        time.sleep(SETTLE_SECONDS)
        tally = load.stop()
    lost = unacknowledged(tally, database_url)
    rolled = Rolled(label, tally, lost, stops, took_over, time.monotonic() - started)
    print(rolled.figures())
    return rolled


def post_with_notes(port: int) -> tuple[int, dict[str, object]]:
    """Create a todo with notes through the balancer: the status and the todo shown."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(
            "POST",
            "/api/todos",
            body=json.dumps({"title": "with notes", "notes": "written by N+1"}),
            headers={"Content-Type": "application/json"},
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_a_release_with_an_expand_migration_rolls_out_and_back_under_load_losing_nothing(
    installed_project: BakedProject,
    test_database_url: str,
    tmp_path: Path,
) -> None:
    haproxy_binary = haproxy()
    with throwaway_database(test_database_url) as database_url:
        current = make_release(installed_project, "release-n", tmp_path / "n", database_url)
        following = make_release(installed_project, "release-n1", tmp_path / "n1", database_url)
        diffs = worked_example(following.path)
        assert len(diffs) >= 2, f"{GUIDE_PAGE} should give the migration and the code as diffs"
        for diff in diffs:
            applied = subprocess.run(
                ["git", "apply"],
                input=diff,
                cwd=following.path,
                capture_output=True,
                text=True,
                check=False,
            )
            assert applied.returncode == 0, f"a diff of {GUIDE_PAGE} does not apply:\n{applied}"
        migrated = current.release_step()
        assert migrated.returncode == 0, migrated.stderr

        rollout = Rollout(tmp_path, haproxy_binary)
        rollout.slots = {slot: free_port() for slot in ("n-a", "n-b", "n1-a", "n1-b")}
        try:
            for slot in ("n-a", "n-b"):
                rollout.start_web(slot, current)
            for slot in ("n-a", "n-b"):
                rollout.wait_ready(slot)
            rollout.start_balancer(serving=["n-a", "n-b"], waiting=["n1-a", "n1-b"])
            forward = roll(
                rollout,
                "forward",
                following,
                bring_in=["n1-a", "n1-b"],
                take_out=["n-a", "n-b"],
                database_url=database_url,
                run_release_step=True,
            )
            created = post_with_notes(rollout.port)
            # Back to N's code on the expanded schema; N's release step is not run again (it
            # does not know N+1's migration, and N needs nothing undone).
            back = roll(
                rollout,
                "back",
                current,
                bring_in=["n-a", "n-b"],
                take_out=["n1-a", "n1-b"],
                database_url=database_url,
                run_release_step=False,
            )
        finally:
            rollout.close()

    for rolled in (forward, back):
        assert rolled.tally.failed == 0, rolled.figures()
        assert rolled.tally.reset == 0, rolled.figures()
        assert rolled.tally.acknowledged, rolled.figures()
        assert not rolled.lost, f"acknowledged writes missing or changed: {rolled.lost}"
        assert [code for _, code in rolled.stops] == [0, 0], rolled.figures()
        # The drain must outlast HAProxy's detection, or requests reach a closed listener.
        assert max(seconds for seconds, _ in rolled.stops) < DRAIN_SECONDS, (
            f"HAProxy did not take the stopped processes out within their {DRAIN_SECONDS} s "
            f"drain: check /readyz more often, or drain for longer. {rolled.figures()}"
        )
    status, todo = created
    assert status == 201, todo
    assert todo["notes"] == "written by N+1", todo
    served_by_n1 = forward.reads_after_takeover()
    assert served_by_n1, "no todo was read once N+1 alone served"
    assert all("notes" in todo for todo in served_by_n1), (
        f"N+1 serves todos without their notes: {served_by_n1[:3]}"
    )
    served_by_n = back.reads_after_takeover()
    assert served_by_n, "no todo was read once N served again"
    assert all("notes" not in todo for todo in served_by_n), served_by_n[:3]
