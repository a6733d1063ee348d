"""What the web server and the app agree on: the WSGI calling convention, and the keys the
server adds to each request's environ for the app to read."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# True while the web process drains after SIGTERM (draining.py); /readyz answers 503 then.
DRAINING_ENVIRON_KEY = "service.draining"
