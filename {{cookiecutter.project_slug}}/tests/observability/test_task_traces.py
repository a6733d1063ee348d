"""Traces across the task queue: a task a request enqueues is run as part of the request's trace.

The web process and a worker process, both from the Procfile, send their spans to one
receiver in the test (otlp_receiver.py), as they would to one collector.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..environments import service_environment
from ..http_client import http_exchange
from ..processes import web_process
from ..task_queue.celery_workers import ARCHIVED, worker_process
from .otlp_receiver import CONSUMER, PRODUCER, SERVER, OtlpReceiver, ReceivedSpan, otlp_receiver

pytestmark = [pytest.mark.processes, pytest.mark.usefixtures("empty_task_queue")]

TASK_NAME = "archive_todo"
# Exports every 0.1 s, so the test waits for its spans a moment only.
QUICK_EXPORTS = {"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_SERVICE_NAME": "traced-service"}


def span_with(receiver: OtlpReceiver, what: str, **wanted: object) -> ReceivedSpan:
    """The first span whose fields have these values, once it has arrived."""

    def matches(span: ReceivedSpan) -> bool:
        return all(getattr(span, name) == value for name, value in wanted.items())

    return receiver.wait_for(matches, what)


def test_a_task_enqueued_by_a_request_runs_in_the_worker_as_part_of_the_requests_trace(
    database_url: str, tmp_path: Path
) -> None:
    with otlp_receiver() as receiver:
        tracing = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, **QUICK_EXPORTS}
        environment = service_environment(database_url, WEB_CONCURRENCY="1", **tracing)
        with (
            web_process(environment, tmp_path) as service,
            worker_process(database_url, tmp_path, "traced-worker", **tracing) as worker,
        ):
            body = json.dumps({"title": "archived in the background"}).encode()
            created = http_exchange(
                "POST", f"{service.base_url}/api/todos", body, {"Content-Type": "application/json"}
            )
            todo_id = json.loads(created.body)["id"]
            enqueued = http_exchange("POST", f"{service.base_url}/api/todos/{todo_id}/archive")
            assert enqueued.status == 202
            request_id = enqueued.header("X-Request-ID")
            request = receiver.wait_for(
                lambda span: (
                    span.kind == SERVER and span.attributes.get("http.request.id") == request_id
                ),
                "the span of the archive request",
            )
            # Its run in the worker, found by the trace alone: the ids crossed the queue.
            run = span_with(
                receiver, "the worker's span of the task", kind=CONSUMER, trace_id=request.trace_id
            )
            publish = span_with(receiver, "the span of the enqueueing", span_id=run.parent_span_id)
            update = receiver.wait_for(
                lambda span: (
                    span.parent_span_id == run.span_id
                    and str(span.attributes.get("db.query.text", "")).startswith("UPDATE todos")
                ),
                "the task's UPDATE, a child of its run",
            )
            archived = [event for event in worker.events() if event["message"] == ARCHIVED]
    assert TASK_NAME in run.name
    assert publish.kind == PRODUCER
    assert publish.parent_span_id == request.span_id
    assert update.trace_id == request.trace_id
    # Two processes, one service: the worker's spans name the same service and release.
    for name in ("service.name", "service.version", "service.release"):
        assert run.resource[name] == request.resource[name]
    # The worker's log line of the task carries the trace it ran in, and the request's id.
    assert [(event["trace_id"], event["request_id"]) for event in archived] == [
        (request.trace_id, request_id)
    ]
    assert archived[0]["span_id"] == run.span_id
    assert receiver.refused == []
