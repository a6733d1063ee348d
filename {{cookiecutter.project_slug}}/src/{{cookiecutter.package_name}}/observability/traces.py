"""Traces: a span for each request and for each of its SQL statements, sent over OTLP/HTTP.

The spans of a process leave it from a background thread in batches, a few seconds apart, so
a collector that is slow or down costs a request nothing: the batch waits at most
OTEL_BSP_EXPORT_TIMEOUT, and spans beyond OTEL_BSP_MAX_QUEUE_SIZE are dropped, not kept.

The request and statement spans are made here rather than by OpenTelemetry's Flask and
SQLAlchemy instrumentations: those work out every attribute of a span before the sampler
decides, and at a 10% sampler that work, thrown away nine times in ten, cost a third of the
throughput of a read (make bench). Here a request the sampler drops costs one sampling
decision, and its statements one look at the current span.
"""

from __future__ import annotations

# A provider re-reads its resource in each forked child (gunicorn's workers, the task pool)
# through a thread pool, from a fork handler of its own. The pool's module must register its
# fork handler first, or the child meets the pool's lock still held across the fork and hangs;
# so it is imported here, before any provider exists, and not left to whoever needs it first.
import concurrent.futures.thread  # noqa: F401
import weakref
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from typing import Any

from flask import Flask
from opentelemetry import context, propagate, trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.semconv.attributes import (
    db_attributes,
    error_attributes,
    http_attributes,
    url_attributes,
)
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from psycopg2.extensions import cursor
from sqlalchemy import Engine, event
from werkzeug.wsgi import get_path_info

from ..__about__ import __version__
from ..db import EXTENSION_KEY as DATABASE
from ..logging import RECORD_FIELDS
from ..request_ids import HEADER as REQUEST_ID_HEADER
from ..web_server.wsgi import WsgiApp
from .metrics import KNOWN_METHODS, matched_route, method_label
from .settings import ObservabilitySettings

# Probes and scrapes come every few seconds and say nothing about the service's work.
UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# The headers a caller's trace arrives in (W3C Trace Context and Baggage), by their WSGI keys:
# with none of them, the request starts a trace of its own and there is nothing to read.
PROPAGATION_HEADERS = {
    "HTTP_TRACEPARENT": "traceparent",
    "HTTP_TRACESTATE": "tracestate",
    "HTTP_BAGGAGE": "baggage",
}
# The name of a request span whose method is not a known one, as the conventions say.
UNKNOWN_METHOD_NAME = "HTTP"
# The context of a request no caller's trace comes with: it starts a trace of its own.
ROOT_CONTEXT = Context()
# The attribute that ties a span to the request's log lines and X-Request-ID.
REQUEST_ID_ATTRIBUTE = "http.request.id"
# The paths the exporter posts to under OTEL_EXPORTER_OTLP_ENDPOINT, as the OTLP spec names them.
TRACES_PATH = "/v1/traces"
# The most spans one export carries (the SDK's default), fewer if the queue is smaller.
EXPORT_BATCH_SIZE = 512

# One provider per process: its batch thread is restarted in each forked worker by the SDK.
# Keyed by the tracing settings alone: the others (the metrics folder) may be filled in later.
_providers: dict[tuple[object, ...], TracerProvider] = {}
# The engines whose statements are traced already (a task pool process traces its engine
# again after the fork); weak, so that the many apps a test run builds can go.
_traced_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


def sampler_for(settings: ObservabilitySettings) -> Sampler:
    """The sampler OTEL_TRACES_SAMPLER names, with OTEL_TRACES_SAMPLER_ARG for a ratio."""
    name = settings.otel_traces_sampler
    root: Sampler
    if name.endswith("always_off"):
        root = ALWAYS_OFF
    elif name.endswith("traceidratio"):
        root = TraceIdRatioBased(settings.otel_traces_sampler_arg)
    else:
        root = ALWAYS_ON
    return ParentBased(root) if name.startswith("parentbased_") else root


def resource_for(settings: ObservabilitySettings, release: str) -> Resource:
    """Who made the spans: the service's name, version and release, and the set attributes."""
    attributes: dict[str, str] = {}
    for pair in settings.otel_resource_attributes.split(","):
        key, _, value = pair.partition("=")
        if not key.strip():
            continue
        attributes[key.strip()] = value.strip()
    attributes.update(
        {
            SERVICE_NAME: settings.otel_service_name,
            SERVICE_VERSION: __version__,
            "service.release": release,
        }
    )
    return Resource(attributes)


def tracer_provider(settings: ObservabilitySettings, release: str) -> TracerProvider:
    """This process's provider for these settings, made once and set as the global one."""
    key = tuple(value for name, value in settings if name.startswith("otel_"))
    provider = _providers.get(key)
    if provider is not None:
        return provider
    provider = TracerProvider(
        resource=resource_for(settings, release), sampler=sampler_for(settings)
    )
    if settings.otel_exporter_otlp_endpoint is not None:
        timeout_ms = settings.otel_bsp_export_timeout
        exporter = OTLPSpanExporter(
            endpoint=settings.otel_exporter_otlp_endpoint + TRACES_PATH, timeout=timeout_ms / 1000
        )
        provider.add_span_processor(
            BatchSpanProcessor(
                exporter,
                max_queue_size=settings.otel_bsp_max_queue_size,
                # The SDK refuses a batch bigger than the queue, and its default batch is 512.
                max_export_batch_size=min(settings.otel_bsp_max_queue_size, EXPORT_BATCH_SIZE),
                schedule_delay_millis=settings.otel_bsp_schedule_delay,
                export_timeout_millis=timeout_ms,
            )
        )
    if not _providers:
        # The global provider can be set once per process; the Celery instrumentation uses it.
        trace.set_tracer_provider(provider)
    _providers[key] = provider
    return provider


def shut_down() -> None:
    """Export what each provider of this process still holds, then stop it."""
    for provider in _providers.values():
        provider.shutdown()


def current_trace_ids() -> Mapping[str, str]:
    """The ids of the span being recorded now, as log fields; none outside a span."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return {}
    return {
        "trace_id": f"{span_context.trace_id:032x}",
        "span_id": f"{span_context.span_id:016x}",
    }


class TracedRequests:
    """WSGI middleware around the app: a server span for each request but the probes, current
    while the app answers it, so that the statements and log lines of the request share it."""

    def __init__(self, app: WsgiApp, tracer: Tracer) -> None:
        self.app = app
        self.tracer = tracer

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """Answer the request inside its span; describe the span only if it is recorded."""
        if environ.get("PATH_INFO") in UNTRACED_PATHS:
            return self.app(environ, start_response)
        # Given, not None, so that the SDK need not look up the current context to find none.
        parent = ROOT_CONTEXT
        if not PROPAGATION_HEADERS.keys().isdisjoint(environ):
            carrier = {
                name: environ[key] for key, name in PROPAGATION_HEADERS.items() if key in environ
            }
            parent = propagate.extract(carrier)
        method = environ.get("REQUEST_METHOD", "")
        name = method if method in KNOWN_METHODS else UNKNOWN_METHOD_NAME
        span = self.tracer.start_span(name, context=parent, kind=SpanKind.SERVER)
        token = context.attach(trace.set_span_in_context(span, parent))
        try:
            if not span.is_recording():
                return self.app(environ, start_response)
            describe_request(span, environ)
            return self.app(environ, answer_noted_on(span, name, start_response))
        except BaseException as error:  # only under `flask run --debug`: the app answers all
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            raise
        finally:
            span.end()
            context.detach(token)


def describe_request(span: Span, environ: dict[str, Any]) -> None:
    """The attributes of a recorded request span that the request itself gives."""
    method = environ.get("REQUEST_METHOD", "")
    span.set_attributes(
        {
            http_attributes.HTTP_REQUEST_METHOD: method_label(method),
            url_attributes.URL_PATH: get_path_info(environ),
            url_attributes.URL_SCHEME: environ.get("wsgi.url_scheme", "http"),
        }
    )
    if method not in KNOWN_METHODS:
        span.set_attribute(http_attributes.HTTP_REQUEST_METHOD_ORIGINAL, method)


def answer_noted_on(
    span: Span, name: str, start_response: Callable[..., Any]
) -> Callable[..., Any]:
    """start_response, noting the answer on the span: the route the request matched (the
    span is named after it), its status and the request's id."""

    def noting(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        route = matched_route()
        if route is not None:
            span.set_attribute(http_attributes.HTTP_ROUTE, route)
            span.update_name(f"{name} {route}")
        code = int(status.split(" ", 1)[0])
        span.set_attribute(http_attributes.HTTP_RESPONSE_STATUS_CODE, code)
        for header, value in headers:
            if header.lower() == REQUEST_ID_HEADER.lower():
                span.set_attribute(REQUEST_ID_ATTRIBUTE, value)
        if code >= 500:
            span.set_attribute(error_attributes.ERROR_TYPE, str(code))
            span.set_status(Status(StatusCode.ERROR))
        return start_response(status, headers, exc_info)

    return noting


def database_attributes(engine: Engine) -> dict[str, Any]:
    """What every statement span of this engine says of the database it runs on."""
    # The conventions' required ones alone: every attribute costs each sampled span its
    # encoding, and the database's address is the deployment's business, not the trace's.
    attributes: dict[str, Any] = {db_attributes.DB_SYSTEM_NAME: "postgresql"}
    if engine.url.database:
        attributes[db_attributes.DB_NAMESPACE] = engine.url.database
    return attributes


def traced_cursor(tracer: Tracer, database: Mapping[str, Any], target: str) -> type[cursor]:
    """psycopg2's cursor, with a span for each statement it sends inside a recorded span.

    A cursor rather than SQLAlchemy's statement events: any listener of those makes the
    engine run its whole event machinery for every statement, sampled or not, where this
    costs a statement the sampler dropped one look at the current span.
    """

    class StatementSpans(cursor):
        # psycopg2's own parameter names, for callers that pass them by keyword.
        def execute(self, query: Any, vars: Any = None) -> None:
            self.send(super().execute, query, vars)

        def executemany(self, query: Any, vars_list: Any) -> None:
            self.send(super().executemany, query, vars_list)

        def send(self, run: Callable[[Any, Any], None], query: Any, parameters: Any) -> None:
            if not trace.get_current_span().is_recording():
                run(query, parameters)
                return
            with statement_span(tracer, database, target, query) as span:
                try:
                    run(query, parameters)
                except Exception as error:
                    span.set_attribute(error_attributes.ERROR_TYPE, type(error).__name__)
                    raise

    return StatementSpans


def statement_span(
    tracer: Tracer, database: Mapping[str, Any], target: str, query: Any
) -> AbstractContextManager[Span]:
    """The client span of one statement, named after its operation and the database."""
    text = query.decode() if isinstance(query, bytes) else str(query)
    operation = text.split(None, 1)[0].upper() if text.strip() else ""
    return tracer.start_as_current_span(
        f"{operation} {target}".strip(),
        kind=SpanKind.CLIENT,
        attributes={
            **database,
            db_attributes.DB_OPERATION_NAME: operation,
            db_attributes.DB_QUERY_TEXT: text,
        },
    )


def trace_database(engine: Engine, provider: TracerProvider) -> None:
    """A span for each statement this engine runs inside a recorded span, as its child."""
    if engine in _traced_engines:
        return
    _traced_engines.add(engine)
    cursor_class = traced_cursor(
        provider.get_tracer(__name__, __version__),
        database_attributes(engine),
        engine.url.database or "postgresql",
    )

    # Each connection the pool opens, in this process or a forked one, makes traced cursors.
    def trace_connection(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.cursor_factory = cursor_class

    event.listen(engine, "connect", trace_connection)


def stamp_log_lines() -> None:
    """Give every log line written inside a span the ids of its trace and span."""
    if current_trace_ids not in RECORD_FIELDS:
        RECORD_FIELDS.append(current_trace_ids)


def init_app(app: Flask, settings: ObservabilitySettings) -> None:
    """Trace the app's requests and its database statements, unless OTEL_SDK_DISABLED."""
    if settings.otel_sdk_disabled:
        return
    provider = tracer_provider(settings, app.extensions["settings"].release_id)
    tracer = provider.get_tracer(__name__, __version__)
    app.wsgi_app = TracedRequests(app.wsgi_app, tracer)  # type: ignore[method-assign]
    trace_database(app.extensions[DATABASE].engine, provider)
    stamp_log_lines()
