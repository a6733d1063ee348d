"""Logs as an event stream: one JSON object per line on stdout, never a file (factor XI)."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

from .config import Settings

# The id of the request being served, stamped on every line logged while serving it.
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

CONSOLE_FORMAT = "%(asctime)s %(levelname)-8s %(name)s [%(request_id)s] %(message)s"

# Loggers that would otherwise print to stderr or in their own shape.
SERVER_LOGGERS = ("gunicorn", "gunicorn.error", "gunicorn.access", "werkzeug")


class ContextFilter(logging.Filter):
    """Adds the release and the current request id to every record."""

    def __init__(self, release: str) -> None:
        super().__init__()
        self.release = release

    def filter(self, record: logging.LogRecord) -> bool:
        """Stamp the record; never drop it."""
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        record.release = self.release
        return True


def json_formatter() -> logging.Formatter:
    """The JSON shape shared by application and access lines."""
    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s %(request_id)s %(release)s",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="timestamp",
        json_ensure_ascii=False,
    )


def configure_logging(settings: Settings) -> None:
    """Send every logger's records to stdout in the configured format; safe to call again."""
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(ContextFilter(settings.release_id))
    if settings.log_format == "json":
        handler.setFormatter(json_formatter())
    else:
        handler.setFormatter(logging.Formatter(CONSOLE_FORMAT))

    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    logging.captureWarnings(True)

    for name in SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        for old in list(server_logger.handlers):
            server_logger.removeHandler(old)
        server_logger.propagate = True
