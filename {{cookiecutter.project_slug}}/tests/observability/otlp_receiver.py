"""An OTLP/HTTP trace receiver on loopback: what a collector would get, decoded for the tests.

It accepts what an OTLP/HTTP exporter posts to <endpoint>/v1/traces (protobuf, plain or
compressed), answers as a collector does, and keeps each span with its resource's attributes.
It runs in a thread of the test process, so a test can wait on what the service sends.
"""

from __future__ import annotations

import contextlib
import gzip
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

TRACES_PATH = "/v1/traces"
PROTOBUF = "application/x-protobuf"
# Far above any batch these tests make; a bigger body is refused rather than read.
MAX_BODY_BYTES = 16 * 1024 * 1024
SERVER = Span.SPAN_KIND_SERVER
CLIENT = Span.SPAN_KIND_CLIENT
CONSUMER = Span.SPAN_KIND_CONSUMER
PRODUCER = Span.SPAN_KIND_PRODUCER


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as the collector got it, ids in the hex the log lines use."""

    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str  # "" for a root span
    attributes: Mapping[str, object]
    resource: Mapping[str, object]


def plain_value(value: AnyValue) -> object:
    """An attribute's value as Python has it: str, int, float, bool, or a list of those."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [plain_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return plain_attributes(value.kvlist_value.values)
    return getattr(value, kind)


def plain_attributes(pairs: Any) -> dict[str, object]:
    """OTLP's list of key-value pairs as a dict."""
    entries: list[KeyValue] = list(pairs)
    return {pair.key: plain_value(pair.value) for pair in entries}


def decoded_spans(message: ExportTraceServiceRequest) -> list[ReceivedSpan]:
    """The spans of one export, each with the attributes of the resource that made it."""
    spans: list[ReceivedSpan] = []
    for resource_spans in message.resource_spans:
        resource = plain_attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            spans.extend(
                ReceivedSpan(
                    name=span.name,
                    kind=span.kind,
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex(),
                    attributes=plain_attributes(span.attributes),
                    resource=resource,
                )
                for span in scope_spans.spans
            )
    return spans


def decompressed(body: bytes, encoding: str) -> bytes:
    """The body as the exporter encoded it before compressing (OTEL_EXPORTER_OTLP_COMPRESSION)."""
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding in ("", "identity"):
        return body
    raise ValueError(f"unknown Content-Encoding {encoding!r}")


class OtlpReceiver:
    """The spans posted to http://127.0.0.1:<port>/v1/traces, kept in arrival order."""

    def __init__(self) -> None:
        self._spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        self.refused: list[str] = []  # why a post was refused; a test expects none
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.handle_post(self)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test's own output is what matters."""

        return Handler

    def handle_post(self, handler: BaseHTTPRequestHandler) -> None:
        """Decode one export and answer as a collector does, or refuse it and note why."""
        length = int(handler.headers.get("Content-Length") or 0)
        content_type = handler.headers.get_content_type()
        problem = None
        if handler.path != TRACES_PATH:
            problem = f"posted to {handler.path}, not {TRACES_PATH}"
        elif content_type != PROTOBUF:
            problem = f"sent as {content_type}, not {PROTOBUF}"
        elif not 0 < length <= MAX_BODY_BYTES:
            problem = f"a body of {length} bytes"
        if problem is not None:
            self._refuse(handler, HTTPStatus.BAD_REQUEST, problem)
            return
        body = handler.rfile.read(length)
        try:
            encoding = handler.headers.get("Content-Encoding", "").strip().lower()
            message = ExportTraceServiceRequest.FromString(decompressed(body, encoding))
        except Exception as error:
            self._refuse(handler, HTTPStatus.BAD_REQUEST, f"undecodable: {error!r}")
            return
        with self._lock:
            self._spans.extend(decoded_spans(message))
        answer = ExportTraceServiceResponse().SerializeToString()
        handler.send_response(HTTPStatus.OK)
        handler.send_header("Content-Type", PROTOBUF)
        handler.send_header("Content-Length", str(len(answer)))
        handler.end_headers()
        handler.wfile.write(answer)

    def _refuse(self, handler: BaseHTTPRequestHandler, status: HTTPStatus, why: str) -> None:
        with self._lock:
            self.refused.append(why)
        handler.send_response(status)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    @property
    def spans(self) -> list[ReceivedSpan]:
        """Every span received so far: a copy, safe to read while more arrive."""
        with self._lock:
            return list(self._spans)

    def wait_for(
        self, wanted: Callable[[ReceivedSpan], bool], what: str, seconds: float = 30
    ) -> ReceivedSpan:
        """The first received span that is wanted, waiting for it to arrive if need be."""
        stop_at = time.monotonic() + seconds
        while time.monotonic() < stop_at:
            found = next((span for span in self.spans if wanted(span)), None)
            if found is not None:
                return found
            time.sleep(0.05)
        pytest.fail(f"no span arrived within {seconds} s: {what}; got {self.spans!r}")

    def start(self) -> None:
        """Serve in a thread of this process."""
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Stop serving and close the port."""
        self._server.shutdown()
        self._server.server_close()


@contextlib.contextmanager
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """A receiver serving on a free port of 127.0.0.1 for the length of the block."""
    receiver = OtlpReceiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
