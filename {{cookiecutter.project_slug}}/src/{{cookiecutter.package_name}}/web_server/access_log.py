"""gunicorn's logs as the service's (factor XI): its access and error lines go to stdout as
the same JSON events as the app's, through the one logging configuration (logging.py)."""

from __future__ import annotations

import logging
from typing import Any

from gunicorn.glogging import Logger

from ..config import settings_or_exit
from ..logging import configure_logging


class JsonLogger(Logger):
    """gunicorn's logger, writing through the service's logging configuration."""

    def setup(self, cfg: Any) -> None:
        """Send gunicorn's own loggers through the service's stdout handler, not their own."""
        configure_logging(settings_or_exit("gunicorn"))

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        """Log one finished request with the fields of the access-log contract."""
        if not self.access_log.isEnabledFor(logging.INFO):  # LOG_LEVEL=WARNING or above
            return
        request_id = next(
            (value for name, value in resp.headers if name.lower() == "x-request-id"), None
        )
        # An answer gunicorn wrote itself (to a request it could not parse) has no status_code.
        status = getattr(resp, "status_code", None) or resp.status
        duration_ms = round(request_time.total_seconds() * 1000, 2)
        path = req.path + (f"?{req.query}" if req.query else "")
        # The record is made and handled directly: Logger.info would first walk the stack to
        # name the caller, which the access line does not show, at a fifth of its cost.
        record = self.access_log.makeRecord(
            self.access_log.name,
            logging.INFO,
            __file__,
            0,
            "%s %s %s",
            (req.method, path, status),
            None,
            extra={
                "method": req.method,
                "path": path,
                "status": int(str(status)[:3]),
                "duration_ms": duration_ms,
                "request_id": request_id,
                "remote_addr": environ.get("REMOTE_ADDR"),
            },
        )
        self.access_log.handle(record)
