"""SQL from the harness: bench/sqlpipe.py run under a baked project's interpreter."""

from __future__ import annotations

import contextlib
import json
import select
import subprocess
import time
import urllib.parse
from typing import Any

from . import procs
from .plan import BENCH_DIR


class SqlPipe:
    """bench/sqlpipe.py running under a baked project's interpreter (which has psycopg2);
    it also creates the bench's databases and drops every one of them at the end."""

    def __init__(self, python: str, admin_url: str) -> None:
        popen = subprocess.Popen(  # noqa: S603 - our own script, with the baked interpreter
            [python, str(BENCH_DIR / "sqlpipe.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        # Not in procs.RUNNING: it must outlive the services, to drop the databases last.
        self.proc = procs.Proc("sqlpipe", popen, time.monotonic())  # type: ignore[arg-type]
        procs.STARTED.append(self.proc)
        self.popen = popen
        self.admin_url = admin_url
        self.databases: list[str] = []

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

    def create_database(self, name: str) -> str:
        """CREATE DATABASE name (dropped by drop_databases); its URL."""
        self.sql("admin", self.admin_url, f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return database_url(self.admin_url, name)

    def drop_databases(self) -> None:
        """Close the connections to the bench's databases and drop them, whatever happens."""
        for name in self.databases:
            with contextlib.suppress(Exception):
                self.sql("admin", self.admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

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
