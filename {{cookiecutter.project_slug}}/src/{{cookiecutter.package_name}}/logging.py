"""Logs as an event stream: one JSON object per line on stdout, never a file (factor XI)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from types import MappingProxyType

from pythonjsonlogger.json import JsonFormatter

from .config import Settings

# Fields stamped on every line logged while serving one request (or running one task).
log_context: ContextVar[Mapping[str, str | None]] = ContextVar(
    "log_context", default=MappingProxyType({})
)

# Functions that give more fields for every record, added by the chosen options (the ids of
# the current trace, say). Each returns the fields it has now; an empty mapping adds none.
RECORD_FIELDS: list[Callable[[], Mapping[str, str]]] = []

CONSOLE_FORMAT = "%(asctime)s %(levelname)-8s %(name)s [%(request_id)s] %(message)s"

# Loggers that would otherwise print to stderr or in their own shape.
SERVER_LOGGERS = ("gunicorn", "gunicorn.error", "gunicorn.access", "werkzeug")


class ContextFilter(logging.Filter):
    """Adds the release and the fields of the current log context to every record."""

    def __init__(self, release: str) -> None:
        super().__init__()
        self.release = release

    def filter(self, record: logging.LogRecord) -> bool:
        """Stamp the record; never drop it."""
        for name, value in {"request_id": None, **log_context.get()}.items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        record.release = self.release
        for fields in RECORD_FIELDS:
            for name, value in fields().items():
                setattr(record, name, value)
        return True


def bind_log_context(**fields: str | None) -> Token[Mapping[str, str | None]]:
    """Stamp these fields on every line logged from here until the token is reset."""
    return log_context.set({**log_context.get(), **fields})


def reset_log_context(token: Token[Mapping[str, str | None]]) -> None:
    """Stop stamping the fields bound with this token."""
    log_context.reset(token)


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
