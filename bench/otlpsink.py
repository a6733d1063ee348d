"""A stand-in OTLP/HTTP collector for the bench: it answers 200 to every POST and counts them.

Run as `python otlpsink.py PORT LIFETIME_S`: it listens on 127.0.0.1:PORT, answers each POST
(the exporter's batches to /v1/traces) with 200 and an empty body (an empty protobuf
Export*ServiceResponse, which means "all accepted"), and `GET /stats` with what it received
so far as JSON. It reads the bodies but decodes nothing. It exits by itself after LIFETIME_S
seconds, so a bench that died cannot leave it behind for long.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COUNTS: dict[str, int] = {"posts": 0, "bytes": 0}
BY_PATH: dict[str, int] = {}
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    """POST: count and accept; GET /stats: the counts."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        with LOCK:
            COUNTS["posts"] += 1
            COUNTS["bytes"] += len(body)
            BY_PATH[self.path] = BY_PATH.get(self.path, 0) + 1
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        if self.path != "/stats":
            self.send_error(404)
            return
        with LOCK:
            body = json.dumps({**COUNTS, "paths": dict(BY_PATH)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """No line per request: the bench reads the counts instead."""


def main() -> int:
    """Serve on 127.0.0.1:PORT until stopped, or LIFETIME_S seconds have passed."""
    port, lifetime = int(sys.argv[1]), float(sys.argv[2])
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"otlp sink on 127.0.0.1:{port} for at most {lifetime:.0f} s", flush=True)
    time.sleep(lifetime)
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
