"""Traces of the real web process, as a collector gets them over OTLP/HTTP.

Each test starts the Procfile's web process with OTEL_EXPORTER_OTLP_ENDPOINT pointed at a
receiver in the test (otlp_receiver.py), or at a collector that is down.
"""

from __future__ import annotations

import contextlib
import json
import socket
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url

from ..environments import service_environment
from ..http_client import Exchange, http_exchange, http_get
from ..processes import RunningService, free_port, stop_process, web_process
from .otlp_receiver import CLIENT, SERVER, OtlpReceiver, ReceivedSpan, otlp_receiver

pytestmark = pytest.mark.processes

SERVICE_NAME = "traced-service"
RESOURCE_ATTRIBUTES = "deployment.environment=staging,team=todos"
# Export every 0.1 s rather than every 5 s, so a test waits for its spans a moment only.
QUICK_EXPORTS = {"OTEL_BSP_SCHEDULE_DELAY": "100", "WEB_CONCURRENCY": "1"}
# A sampled W3C trace context, as a caller that traces would send it.
SAMPLED_PARENT_TRACE_ID = "5e1f0c0ffee0c0ffee0c0ffee0c0ffee"
SAMPLED_PARENT = {"traceparent": f"00-{SAMPLED_PARENT_TRACE_ID}-00f067aa0ba902b7-01"}


def post_todo(base_url: str, title: str, headers: dict[str, str] | None = None) -> Exchange:
    """POST /api/todos with a JSON body; the whole answer."""
    body = json.dumps({"title": title}).encode()
    return http_exchange(
        "POST",
        f"{base_url}/api/todos",
        body,
        {"Content-Type": "application/json", **(headers or {})},
    )


def request_id_of(exchange: Exchange) -> str:
    """The X-Request-ID the service answered with."""
    request_id = exchange.header("X-Request-ID")
    assert request_id, "the answer has no X-Request-ID"
    return request_id


def server_span_of(receiver: OtlpReceiver, request_id: str) -> ReceivedSpan:
    """The request span of the request with this id, once it has arrived."""
    return receiver.wait_for(
        lambda span: span.kind == SERVER and span.attributes.get("http.request.id") == request_id,
        f"the SERVER span of request {request_id}",
    )


def children_of(receiver: OtlpReceiver, parent: ReceivedSpan) -> list[ReceivedSpan]:
    """The spans received so far whose parent is this span."""
    return [span for span in receiver.spans if span.parent_span_id == parent.span_id]


def statement_spans_of(receiver: OtlpReceiver, parent: ReceivedSpan, verb: str) -> ReceivedSpan:
    """The SQL span of the parent whose statement begins with verb, once it has arrived."""

    def wanted(span: ReceivedSpan) -> bool:
        statement = str(span.attributes.get("db.query.text", ""))
        return span.parent_span_id == parent.span_id and statement.startswith(verb)

    return receiver.wait_for(wanted, f"a {verb} span under {parent.name}")


def log_events(service: RunningService) -> list[dict[str, Any]]:
    """The JSON events the process has written on stdout so far."""
    return [json.loads(line) for line in service.stdout_lines()]


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    """One collector for the module's traced process."""
    with otlp_receiver() as started:
        yield started


@pytest.fixture(scope="module")
def traced_service(
    database_url: str, receiver: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    """A web process sending every span to the receiver, its name and attributes set."""
    environment = service_environment(
        database_url,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_SERVICE_NAME=SERVICE_NAME,
        OTEL_RESOURCE_ATTRIBUTES=RESOURCE_ATTRIBUTES,
        **QUICK_EXPORTS,
    )
    with web_process(environment, tmp_path_factory.mktemp("traced")) as service:
        yield service


def test_a_request_is_a_server_span_with_its_route_status_and_request_id(
    traced_service: RunningService, receiver: OtlpReceiver
) -> None:
    created = post_todo(traced_service.base_url, "traced")
    assert created.status == 201
    location = created.header("Location")
    read = http_exchange("GET", f"{traced_service.base_url}{location}")
    assert read.status == 200

    post = server_span_of(receiver, request_id_of(created))
    get = server_span_of(receiver, request_id_of(read))
    assert (post.name, post.attributes["http.route"]) == ("POST /api/todos", "/api/todos")
    assert post.attributes["http.response.status_code"] == 201
    # The route template, not the path: every todo's reads are one operation.
    assert get.name == "GET /api/todos/<int:todo_id>"
    assert get.attributes["http.route"] == "/api/todos/<int:todo_id>"
    assert get.attributes["http.response.status_code"] == 200
    assert get.attributes["http.request.method"] == "GET"
    assert get.attributes["url.path"] == location
    assert get.attributes["url.scheme"] == "http"
    assert post.parent_span_id == get.parent_span_id == ""  # no caller traced them
    assert post.trace_id != get.trace_id
    assert receiver.refused == []


def test_the_sql_of_a_request_is_its_child_spans(
    traced_service: RunningService, receiver: OtlpReceiver, database_url: str
) -> None:
    created = post_todo(traced_service.base_url, "its statements")
    read = http_exchange("GET", f"{traced_service.base_url}{created.header('Location')}")
    post = server_span_of(receiver, request_id_of(created))
    get = server_span_of(receiver, request_id_of(read))

    insert = statement_spans_of(receiver, post, "INSERT INTO todos")
    select = statement_spans_of(receiver, get, "SELECT todos.id")
    assert (insert.trace_id, select.trace_id) == (post.trace_id, get.trace_id)
    assert insert.kind == select.kind == CLIENT
    database = make_url(database_url).database
    assert insert.name == f"INSERT {database}"
    assert insert.attributes["db.system.name"] == "postgresql"
    assert insert.attributes["db.namespace"] == database
    assert insert.attributes["db.operation.name"] == "INSERT"
    # The statement as sent, with placeholders: the values (a title, a password) stay out.
    assert "its statements" not in str(insert.attributes["db.query.text"])
    # Every database span of a request is its child: none is left without a parent.
    for request_span in (post, get):
        children = children_of(receiver, request_span)
        assert {span.trace_id for span in children} == {request_span.trace_id}


def test_every_span_names_the_service_and_the_attributes_the_operator_set(
    traced_service: RunningService, receiver: OtlpReceiver
) -> None:
    span = server_span_of(receiver, request_id_of(post_todo(traced_service.base_url, "who")))
    assert span.resource["service.name"] == SERVICE_NAME
    assert span.resource["deployment.environment"] == "staging"
    assert span.resource["team"] == "todos"
    assert {tuple(sorted(each.resource.items())) for each in receiver.spans} == {
        tuple(sorted(span.resource.items()))
    }


def test_log_lines_written_inside_a_request_carry_its_trace_and_span_ids(
    traced_service: RunningService, receiver: OtlpReceiver
) -> None:
    created = post_todo(traced_service.base_url, "correlated")
    request_id = request_id_of(created)
    span = server_span_of(receiver, request_id)

    lines = [event for event in log_events(traced_service) if event["request_id"] == request_id]
    inside = [event for event in lines if event["message"] == "todo created"]
    assert len(inside) == 1, lines
    assert inside[0]["trace_id"] == span.trace_id
    assert inside[0]["span_id"] == span.span_id


def test_lines_logged_outside_any_span_carry_no_trace_ids(
    traced_service: RunningService,
) -> None:
    # gunicorn's own lines (start, workers) are written where no span is open.
    startup = [event for event in log_events(traced_service) if event["logger"] == "gunicorn.error"]
    assert startup
    assert not any("trace_id" in event or "span_id" in event for event in startup)


def test_probes_are_never_traced_not_even_their_database_checks(
    traced_service: RunningService, receiver: OtlpReceiver
) -> None:
    for path in ("/healthz", "/readyz"):
        assert http_get(f"{traced_service.base_url}{path}", SAMPLED_PARENT)[0] == 200
        assert http_get(f"{traced_service.base_url}{path}")[0] == 200
    # One worker exports its spans in the order they end, so once a later request's span has
    # arrived, the probes' spans would have arrived before it.
    marker = post_todo(traced_service.base_url, "after the probes")
    server_span_of(receiver, request_id_of(marker))
    probe_spans = [
        span
        for span in receiver.spans
        if span.trace_id == SAMPLED_PARENT_TRACE_ID
        or str(span.attributes.get("http.route", "")).endswith(("/healthz", "/readyz"))
        # A statement no request ran: the readiness check's, if it were traced.
        or (span.parent_span_id == "" and span.kind != SERVER)
    ]
    assert probe_spans == []


def test_no_span_is_sent_when_the_sampler_keeps_no_trace(database_url: str, tmp_path: Path) -> None:
    environment = service_environment(
        database_url,
        OTEL_TRACES_SAMPLER="parentbased_traceidratio",
        OTEL_TRACES_SAMPLER_ARG="0",
        **QUICK_EXPORTS,
    )
    with otlp_receiver() as receiver:
        environment["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
        with web_process(environment, tmp_path) as service:
            unsampled = [post_todo(service.base_url, f"unsampled {n}") for n in range(3)]
            unsampled.append(http_exchange("GET", f"{service.base_url}/api/todos"))
            assert [exchange.status for exchange in unsampled] == [201, 201, 201, 200]
            # A caller whose trace is sampled still gets its span: the exporter works, and
            # whatever the unsampled requests had made would have been sent before it.
            marker = post_todo(service.base_url, "sampled by its caller", SAMPLED_PARENT)
            span = server_span_of(receiver, request_id_of(marker))
        lines = log_events(service)
    assert span.trace_id == SAMPLED_PARENT_TRACE_ID
    assert {each.trace_id for each in receiver.spans} == {SAMPLED_PARENT_TRACE_ID}
    # Log lines still name the trace, sampled or not: ids are made whatever the sampler says.
    unsampled_ids = {request_id_of(exchange) for exchange in unsampled}
    created = [event for event in lines if event["request_id"] in unsampled_ids]
    assert all(len(event.get("trace_id", "")) == 32 for event in created if "todo_id" in event)


def test_the_spans_of_the_last_requests_are_sent_when_the_web_process_stops(
    database_url: str, receiver: OtlpReceiver, tmp_path: Path
) -> None:
    # The SDK's own 5 s between exports: the stop comes before the first one is due.
    environment = service_environment(
        database_url, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, WEB_CONCURRENCY="1"
    )
    with web_process(environment, tmp_path) as service:
        request_id = request_id_of(post_todo(service.base_url, "sent at the stop"))
    server_span_of(receiver, request_id)


# The collector is down.

REQUESTS_PER_PROCESS = 50


# Exports give up after a second; the graceful stop allows more than that, and less than the
# default 20 s, so a stop that waits on the collector shows.
EXPORT_TIMEOUT_MS = 1000
GRACEFUL_SECONDS = 8


@contextlib.contextmanager
def black_hole() -> Iterator[str]:
    """An endpoint that accepts connections and never answers: a collector that hangs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        # The kernel completes the handshakes of the backlog; nothing ever reads or answers.
        listener.listen(256)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def timed_read(base_url: str, path: str) -> float:
    """Seconds one GET took; it must answer 200."""
    started = time.perf_counter()
    status, _ = http_get(f"{base_url}{path}")
    elapsed = time.perf_counter() - started
    assert status == 200, f"GET {path} answered {status}"
    return elapsed


def test_a_collector_that_is_down_costs_requests_nothing_and_does_not_hold_up_the_stop(
    database_url: str, tmp_path: Path
) -> None:
    down_settings = {
        "OTEL_BSP_EXPORT_TIMEOUT": str(EXPORT_TIMEOUT_MS),
        "OTEL_BSP_MAX_QUEUE_SIZE": "64",  # fewer than the spans made: some are dropped
        "GRACEFUL_TIMEOUT": str(GRACEFUL_SECONDS),
        **QUICK_EXPORTS,
    }
    with contextlib.ExitStack() as stack:
        hanging = stack.enter_context(black_hole())
        closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there: refused at once
        services = {
            name: stack.enter_context(
                web_process(service_environment(database_url, **settings), tmp_path)
            )
            for name, settings in {
                "unset": down_settings,
                "hanging": {**down_settings, "OTEL_EXPORTER_OTLP_ENDPOINT": hanging},
                "refusing": {**down_settings, "OTEL_EXPORTER_OTLP_ENDPOINT": closed},
            }.items()
        }
        location = post_todo(services["unset"].base_url, "read often").header("Location")
        assert location is not None
        durations: dict[str, list[float]] = {name: [] for name in services}
        # Side by side, in turn, so the machine's noise falls on all three alike.
        for _ in range(REQUESTS_PER_PROCESS):
            for name, service in services.items():
                durations[name].append(timed_read(service.base_url, location))
        for service in services.values():
            assert http_get(f"{service.base_url}/healthz")[0] == 200

        stops = {}
        for name, service in services.items():
            started = time.monotonic()
            exit_code = stop_process(service.process, timeout=GRACEFUL_SECONDS * 2)
            stops[name] = (exit_code, time.monotonic() - started)

    baseline = statistics.median(durations["unset"])
    for name in ("hanging", "refusing"):
        median = statistics.median(durations[name])
        assert median < 2 * baseline + 0.005, f"{name}: {median:.4f} s against {baseline:.4f} s"
    for name, (exit_code, seconds) in stops.items():
        assert exit_code == 0, f"{name} exited {exit_code}"
        assert seconds < GRACEFUL_SECONDS, f"{name} took {seconds:.1f} s to stop"
        killed = [line for line in services[name].stdout_lines() if "SIGKILL" in line]
        assert killed == [], f"{name}: a worker outlived the graceful stop"
