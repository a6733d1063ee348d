"""Gunicorn settings for the web process, every one from the environment (factors VII-IX)."""

from __future__ import annotations

import os
from typing import Any

from gunicorn.glogging import Logger

from {{ cookiecutter.package_name }}.config import settings_or_exit
from {{ cookiecutter.package_name }}.logging import configure_logging

settings = settings_or_exit("gunicorn")

# Port binding (VII): the service is self-contained and binds the port it is given.
bind = [f"0.0.0.0:{settings.port}"]

# Concurrency (VIII): scale by running more worker processes, set per deployment.
workers = settings.web_concurrency
threads = settings.web_threads
worker_class = "gthread" if settings.web_threads > 1 else "sync"

# Disposability (IX): finish in-flight requests on SIGTERM within graceful_timeout.
timeout = settings.web_timeout
graceful_timeout = settings.graceful_timeout
keepalive = settings.keepalive

# Stay in the foreground, write no pid file, no control socket, nothing under $HOME.
daemon = False
pidfile = None
control_socket_disable = True
# Worker heartbeats go to RAM, not to a disk that may be slow or read-only.
HEARTBEAT_DIR = "/dev/shm"  # noqa: S108 - not a temporary file of ours
worker_tmp_dir = HEARTBEAT_DIR if os.path.isdir(HEARTBEAT_DIR) else None

# Logs (XI): access and error lines go to stdout as the same JSON events as the app's.
accesslog = "-"
errorlog = "-"
loglevel = settings.log_level.lower()


class JsonLogger(Logger):
    """Gunicorn's logger, writing through the application's logging configuration."""

    def setup(self, cfg: Any) -> None:
        """Send gunicorn's own loggers through the service's stdout handler, not their own."""
        configure_logging(settings)

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        """Log one finished request with the fields of the access-log contract."""
        headers = {name.lower(): value for name, value in resp.headers}
        status = resp.status_code if isinstance(resp.status_code, int) else resp.status
        duration_ms = round(request_time.total_seconds() * 1000, 2)
        path = req.path + (f"?{req.query}" if req.query else "")
        self.access_log.info(
            "%s %s %s",
            req.method,
            path,
            status,
            extra={
                "method": req.method,
                "path": path,
                "status": int(str(status)[:3]),
                "duration_ms": duration_ms,
                "request_id": headers.get("x-request-id"),
                "remote_addr": environ.get("REMOTE_ADDR"),
            },
        )


logger_class = JsonLogger
