"""A small SQL co-process, run with a baked project's interpreter (it has psycopg2).

The harness runs on the template's interpreter, which has no PostgreSQL driver; this
script runs under the baked project's .venv instead and answers one JSON request per
line on stdin with one JSON line on stdout. It imports nothing of the bench package.

Requests:
  {"op": "sql", "conn": name, "url": url, "sql": text, "params": [...]}
      -> {"rows": [[...], ...] or null, "rowcount": n}
  {"op": "close", "conn": name} -> {"closed": true}
  {"op": "replay", "conn": name, "url": url, "statements": [...], "seconds": s,
   "max_loops": n} -> {"loops": n, "us_per_loop": x}
Every connection is in autocommit mode, so BEGIN/ROLLBACK in a replay are sent as given.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import psycopg2

connections: dict[str, Any] = {}


def connection(request: dict[str, Any]) -> Any:
    """The named connection, opened on first use."""
    name = request["conn"]
    if name not in connections:
        conn = psycopg2.connect(request["url"], connect_timeout=5)
        conn.autocommit = True
        connections[name] = conn
    return connections[name]


def run_sql(request: dict[str, Any]) -> dict[str, Any]:
    """Run one statement; its rows (if it returns any) and row count."""
    with connection(request).cursor() as cursor:
        cursor.execute(request["sql"], request.get("params") or None)
        rows = cursor.fetchall() if cursor.description is not None else None
        return {"rows": rows, "rowcount": cursor.rowcount}


def replay(request: dict[str, Any]) -> dict[str, Any]:
    """Send a sequence of statements in a loop, each a round trip; time per loop."""
    statements = request["statements"]
    stop_at = time.perf_counter() + float(request["seconds"])
    max_loops = int(request.get("max_loops", 100_000))
    loops = 0
    with connection(request).cursor() as cursor:
        started, cpu_started = time.perf_counter(), time.process_time()
        while loops < max_loops and time.perf_counter() < stop_at:
            for statement in statements:
                cursor.execute(statement)
                if cursor.description is not None:
                    cursor.fetchall()
            loops += 1
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "loops": loops,
        "us_per_loop": elapsed / max(loops, 1) * 1e6,
        "client_cpu_us_per_loop": cpu / max(loops, 1) * 1e6,
    }


def close(request: dict[str, Any]) -> dict[str, Any]:
    """Close a named connection, if open."""
    conn = connections.pop(request["conn"], None)
    if conn is not None:
        conn.close()
    return {"closed": True}


OPERATIONS = {"sql": run_sql, "replay": replay, "close": close}


def main() -> int:
    """Serve requests until stdin closes."""
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            answer = OPERATIONS[request["op"]](request)
        except Exception as error:  # reported to the harness, which decides
            answer = {"error": f"{type(error).__name__}: {error}".strip()}
        sys.stdout.write(json.dumps(answer, default=str) + "\n")
        sys.stdout.flush()
    for conn in connections.values():
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
