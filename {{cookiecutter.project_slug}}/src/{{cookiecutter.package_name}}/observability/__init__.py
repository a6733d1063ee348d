"""Traces, metrics and error reports: the observability option.

Logs are already an event stream (factor XI); this option adds the other two signals and
error reports, each configured the twelve-factor way, from the environment alone, with the
variable names the OpenTelemetry and Sentry SDKs document:

- traces (traces.py): OpenTelemetry spans of each request, its SQL and its tasks, sent
  over OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT; every log line written inside a span
  carries its trace_id and span_id;
- metrics (metrics.py): GET /metrics in Prometheus's text format, summed over the web
  process's workers, or on a port of its own (METRICS_PORT), or off (METRICS_ENABLED);
- error reports (error_reports.py): each unhandled exception sent to SENTRY_DSN, with the
  release, and with the service's secrets taken out.

Its settings are in settings.py; option.py is what the core calls, and task_queue_option.py
what the task queue option calls, where the two are chosen together.
"""
