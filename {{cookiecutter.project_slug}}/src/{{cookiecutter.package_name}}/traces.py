"""Traces: a span for each request and for each of its SQL statements, sent over OTLP/HTTP.

The spans of a process leave it from a background thread in batches, a few seconds apart, so
a collector that is slow or down costs a request nothing: the batch waits at most
OTEL_BSP_EXPORT_TIMEOUT, and spans beyond OTEL_BSP_MAX_QUEUE_SIZE are dropped, not kept.
"""

from __future__ import annotations

# A provider re-reads its resource in each forked child (gunicorn's workers, the task pool)
# through a thread pool, from a fork handler of its own. The pool's module must register its
# fork handler first, or the child meets the pool's lock still held across the fork and hangs;
# so it is imported here, before any provider exists, and not left to whoever needs it first.
import concurrent.futures.thread  # noqa: F401
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flask import Flask, Response
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.instrumentation.utils import suppress_instrumentation
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
from sqlalchemy import Engine

from .__about__ import __version__
from .db import EXTENSION_KEY as DATABASE
from .logging import RECORD_FIELDS, log_context
from .options.observability import ObservabilitySettings

# Probes and scrapes come every few seconds and say nothing about the service's work.
UNTRACED_PATH_INFO = frozenset({"/healthz", "/readyz", "/metrics"})
# The Flask instrumentation searches each of these patterns in a request's whole URL: anchored
# at the path, so that a query that merely names a probe (?q=metrics) keeps its span.
UNTRACED_URLS = ",".join(rf"^https?://[^/?]+{path}(\?|$)" for path in sorted(UNTRACED_PATH_INFO))
# The attribute that ties a span to the request's log lines and X-Request-ID.
REQUEST_ID_ATTRIBUTE = "http.request.id"
# The paths the exporter posts to under OTEL_EXPORTER_OTLP_ENDPOINT, as the OTLP spec names them.
TRACES_PATH = "/v1/traces"
# The most spans one export carries (the SDK's default), fewer if the queue is smaller.
EXPORT_BATCH_SIZE = 512

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# One provider per process: its batch thread is restarted in each forked worker by the SDK.
# Keyed by the tracing settings alone: the others (the metrics folder) may be filled in later.
_providers: dict[tuple[object, ...], TracerProvider] = {}


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


def current_trace_ids() -> Mapping[str, str]:
    """The ids of the span being recorded now, as log fields; none outside a span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


def tag_request_id(response: Response) -> Response:
    """Put the request's id on its span, so a trace leads to the request's log lines."""
    request_id = log_context.get().get("request_id")
    if request_id is not None:
        trace.get_current_span().set_attribute(REQUEST_ID_ATTRIBUTE, request_id)
    return response


def untraced_probes(app: WsgiApp) -> WsgiApp:
    """The app, with no span at all for a probe or a scrape: not even for the statements of
    the readiness check, which would otherwise each start a trace of their own."""

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") in UNTRACED_PATH_INFO:
            with suppress_instrumentation():
                return app(environ, start_response)
        return app(environ, start_response)

    return serve


def trace_database(engine: Engine, provider: TracerProvider) -> None:
    """A span for each statement this engine runs, a child of the span that runs it."""
    sql = SQLAlchemyInstrumentor()
    if sql.is_instrumented_by_opentelemetry:  # an app built before in this process (tests)
        sql.uninstrument()
    # The instrumentation declares SQLAlchemy < 2.1 and does nothing on 2.1 unless told to
    # skip that check; the engine events it uses are unchanged (tests/observability proves it).
    sql.instrument(engine=engine, tracer_provider=provider, skip_dep_check=True)


def stamp_log_lines() -> None:
    """Give every log line written inside a span the ids of its trace and span."""
    if current_trace_ids not in RECORD_FIELDS:
        RECORD_FIELDS.append(current_trace_ids)


def init_app(app: Flask, settings: ObservabilitySettings) -> None:
    """Trace the app's requests and its database statements, unless OTEL_SDK_DISABLED."""
    if settings.otel_sdk_disabled:
        return
    provider = tracer_provider(settings, app.extensions["settings"].release_id)
    FlaskInstrumentor.instrument_app(  # type: ignore[no-untyped-call]
        app, tracer_provider=provider, excluded_urls=UNTRACED_URLS
    )
    app.after_request(tag_request_id)
    app.wsgi_app = untraced_probes(app.wsgi_app)  # type: ignore[method-assign,assignment]
    trace_database(app.extensions[DATABASE].engine, provider)
    stamp_log_lines()
