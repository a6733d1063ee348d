"""The spans of one request, as the app makes them, read in the test's own process.

test_traces.py proves the spans reach a collector from the real web process; these tests look
at the cases that are awkward to provoke there: a caller's trace, a path no route matches, a
failure of the app and one of the database, and a request the sampler drops.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.db import get_connection
from {{ cookiecutter.package_name }}.observability import traces
from {{ cookiecutter.package_name }}.observability.settings import (
    ObservabilitySettings,
)

CALLER_TRACE_ID = 0x5E1F0C0FFEE0C0FFEE0C0FFEE0C0FFEE
CALLER_SPAN_ID = 0x00F067AA0BA902B7
CALLER = {"traceparent": f"00-{CALLER_TRACE_ID:032x}-{CALLER_SPAN_ID:016x}-01"}


def provider_of_settings() -> TracerProvider:
    """The provider every app built in this process with the current variables shares."""
    return traces.tracer_provider(ObservabilitySettings.load(), "test-release")


# A provider cannot drop a processor once given one: one recorder for the whole session.
@pytest.fixture(scope="session")
def recorder() -> InMemorySpanExporter:
    """Every span the apps of the tests' variables end, kept in memory."""
    exporter = InMemorySpanExporter()
    provider_of_settings().add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def spans(recorder: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    """The recorder, emptied for the test."""
    recorder.clear()
    yield recorder
    recorder.clear()


def server_spans(recorded: InMemorySpanExporter) -> list[ReadableSpan]:
    """The request spans ended so far."""
    return [span for span in recorded.get_finished_spans() if span.kind == SpanKind.SERVER]


def only_server_span(recorded: InMemorySpanExporter) -> ReadableSpan:
    """The one request span ended so far."""
    found = server_spans(recorded)
    assert len(found) == 1, [span.name for span in found]
    return found[0]


def attributes_of(span: ReadableSpan) -> dict[str, Any]:
    """The span's attributes, as a plain dict."""
    return dict(span.attributes or {})


def test_a_request_that_carries_a_callers_trace_continues_it(
    client: FlaskClient, spans: InMemorySpanExporter
) -> None:
    assert client.get("/api/todos", headers=CALLER).status_code == 200
    span = only_server_span(spans)
    assert span.context is not None
    assert span.context.trace_id == CALLER_TRACE_ID
    assert span.parent is not None
    assert span.parent.span_id == CALLER_SPAN_ID
    assert span.parent.is_remote


def test_a_request_without_a_callers_trace_starts_its_own(
    client: FlaskClient, spans: InMemorySpanExporter
) -> None:
    assert client.get("/api/todos").status_code == 200
    span = only_server_span(spans)
    assert span.parent is None
    assert span.context is not None
    assert span.context.trace_id != CALLER_TRACE_ID


def test_a_path_no_route_matches_is_named_by_its_method_alone(
    client: FlaskClient, spans: InMemorySpanExporter
) -> None:
    assert client.get("/no/such/path/12345").status_code == 404
    span = only_server_span(spans)
    # The raw path would make one operation of every mistyped address.
    assert span.name == "GET"
    assert "http.route" not in attributes_of(span)
    assert attributes_of(span)["http.response.status_code"] == 404
    assert span.status.status_code == StatusCode.UNSET  # the client's mistake, not a failure


def test_a_made_up_method_is_named_http_and_kept_only_as_an_attribute(
    client: FlaskClient, spans: InMemorySpanExporter
) -> None:
    assert client.open("/api/todos", method="PURGE").status_code == 405
    span = only_server_span(spans)
    # Named by the method, a client could make as many span names as it likes.
    assert span.name == "HTTP"
    assert attributes_of(span)["http.request.method"] == "_OTHER"
    assert attributes_of(span)["http.request.method_original"] == "PURGE"


def test_an_unhandled_error_marks_the_request_span_as_failed(
    failing_client: FlaskClient, spans: InMemorySpanExporter
) -> None:
    assert failing_client.get("/boom").status_code == 500
    span = only_server_span(spans)
    assert span.name == "GET /boom"
    assert attributes_of(span)["http.response.status_code"] == 500
    assert attributes_of(span)["error.type"] == "500"
    assert span.status.status_code == StatusCode.ERROR
    # The answer carries no internals, and neither does the span.
    assert "secret internals" not in str(span.to_json())


def test_a_statement_the_database_refuses_is_a_failed_child_span(
    app: Flask, spans: InMemorySpanExporter
) -> None:
    tracer = provider_of_settings().get_tracer(__name__)
    with (
        app.test_request_context("/"),
        tracer.start_as_current_span("caller") as caller,
        pytest.raises(ProgrammingError),
    ):
        get_connection().execute(text("SELECT no_such_column FROM todos"))
    (statement,) = [span for span in spans.get_finished_spans() if span.kind == SpanKind.CLIENT]
    assert statement.parent is not None
    assert statement.parent.span_id == caller.get_span_context().span_id
    assert statement.name.startswith("SELECT ")
    assert statement.status.status_code == StatusCode.ERROR
    assert attributes_of(statement)["error.type"] == "UndefinedColumn"
    assert [event.name for event in statement.events] == ["exception"]


def test_a_statement_run_outside_any_recorded_span_makes_no_span(
    app: Flask, spans: InMemorySpanExporter
) -> None:
    assert not trace.get_current_span().is_recording()
    with app.test_request_context("/"):
        assert get_connection().execute(text("SELECT 1")).scalar_one() == 1
    assert spans.get_finished_spans() == ()


def test_a_request_the_sampler_drops_records_nothing_and_still_answers(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        patch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
        patch.setenv("OTEL_TRACES_SAMPLER_ARG", "0")
        dropped = InMemorySpanExporter()
        provider_of_settings().add_span_processor(SimpleSpanProcessor(dropped))
        application = create_app(settings)
    try:
        client = application.test_client()
        created = client.post("/api/todos", json={"title": "unrecorded"})
        assert created.status_code == 201
        assert client.get(created.headers["Location"]).status_code == 200
    finally:
        application.extensions["database"].dispose()
    assert dropped.get_finished_spans() == ()
