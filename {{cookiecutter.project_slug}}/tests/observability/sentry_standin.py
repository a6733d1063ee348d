"""A stand-in for Sentry's ingest on 127.0.0.1: it keeps every request the SDK sends it.

The SDK posts each report as an envelope to /api/<project id>/envelope/: a line of JSON
headers, then items, each a line of JSON headers and its payload (`length` bytes long when
the item header gives it, else up to the end of the line). The body is gzip-compressed, or
brotli-compressed when the brotli package is installed; Content-Encoding says which.
"""

from __future__ import annotations

import contextlib
import gzip
import importlib
import json
import re
import secrets
import string
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ENVELOPE_PATH = re.compile(r"/api/(?P<project>[0-9]+)/envelope/")
# The SDK asks for no more than the answer's status; an id is what Sentry sends back.
ACCEPTED = b'{"id": "0"}'


def random_letters(count: int) -> str:
    """Letters only: no event id, timestamp or hex digest in a report contains them by chance."""
    return "".join(secrets.choice(string.ascii_letters) for _ in range(count))


def decoded(body: bytes, encoding: str) -> bytes:
    """A request body as it was before the sender compressed it."""
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "br":
        # Only a sender with brotli installed uses it; this venv then has it too.
        brotli: Any = importlib.import_module("brotli")
        return bytes(brotli.decompress(body))
    if encoding in ("", "identity"):
        return body
    raise ValueError(f"unknown Content-Encoding {encoding!r}")


@dataclass(frozen=True)
class Item:
    """One item of an envelope: its headers (`type` says what it is) and its payload."""

    headers: dict[str, Any]
    payload: bytes

    def json(self) -> Any:
        """The payload read as JSON, as event, transaction and session payloads are."""
        return json.loads(self.payload)


@dataclass(frozen=True)
class Envelope:
    """A parsed envelope: its own headers and its items, in order."""

    headers: dict[str, Any]
    items: list[Item]


def parse_envelope(body: bytes) -> Envelope:
    """Read an envelope as Sentry documents its format."""
    first, _, rest = body.partition(b"\n")
    headers = json.loads(first)
    items = []
    while rest.strip():
        item_line, _, rest = rest.partition(b"\n")
        item_headers = json.loads(item_line)
        if "length" in item_headers:
            length = int(item_headers["length"])
            payload, rest = rest[:length], rest[length:].removeprefix(b"\n")
        else:
            payload, _, rest = rest.partition(b"\n")
        items.append(Item(item_headers, payload))
    return Envelope(headers, items)


@dataclass(frozen=True)
class Received:
    """One request that reached the stand-in, whatever its path."""

    method: str
    path: str
    headers: dict[str, str]
    # The body as it came over the wire; `body` undoes its Content-Encoding.
    raw_body: bytes

    @property
    def body(self) -> bytes:
        """The body as it was before the sender compressed it."""
        encoding = next(
            (value for name, value in self.headers.items() if name.lower() == "content-encoding"),
            "",
        )
        return decoded(self.raw_body, encoding.strip().lower())


@dataclass
class SentryStandIn:
    """What the stand-in has received, and the DSN that points an SDK at it."""

    port: int
    key: str = field(default_factory=lambda: random_letters(32))
    project_id: str = "42"
    received: list[Received] = field(default_factory=list, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def dsn(self) -> str:
        """A DSN for this stand-in, as Sentry shows one: http://<key>@<host>/<project id>."""
        return f"http://{self.key}@127.0.0.1:{self.port}/{self.project_id}"

    def requests(self) -> list[Received]:
        """A copy of every request received so far."""
        with self.lock:
            return list(self.received)

    def envelopes(self) -> list[Envelope]:
        """Every envelope posted to this project's envelope endpoint so far."""
        return [
            parse_envelope(request.body)
            for request in self.requests()
            if (match := ENVELOPE_PATH.fullmatch(request.path))
            and match["project"] == self.project_id
        ]

    def events(self) -> list[dict[str, Any]]:
        """The error events among the envelopes' items (not sessions, not client reports)."""
        return [
            item.json()
            for envelope in self.envelopes()
            for item in envelope.items
            if item.headers.get("type") == "event"
        ]


def handler_for(standin: SentryStandIn) -> type[BaseHTTPRequestHandler]:
    """A request handler that keeps each request in standin and answers as Sentry would."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw_body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            # Kept as it came: a body that cannot be decoded fails the test that reads it.
            with standin.lock:
                standin.received.append(Received("POST", self.path, dict(self.headers), raw_body))
            known = ENVELOPE_PATH.fullmatch(self.path) is not None
            self.send_response(200 if known else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(ACCEPTED)))
            self.end_headers()
            self.wfile.write(ACCEPTED)

        def do_GET(self) -> None:
            with standin.lock:
                standin.received.append(Received("GET", self.path, dict(self.headers), b""))
            self.send_error(404)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test reads what was received, not a log of it."""

    return Handler


@contextlib.contextmanager
def sentry_standin() -> Iterator[SentryStandIn]:
    """Serve a stand-in for Sentry on a free port of 127.0.0.1 in a thread; stop it after."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    standin = SentryStandIn(port=int(server.server_address[1]))
    server.RequestHandlerClass = handler_for(standin)
    thread = threading.Thread(target=server.serve_forever, name="sentry-standin", daemon=True)
    thread.start()
    try:
        yield standin
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
