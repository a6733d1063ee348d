"""Request ids: every response carries X-Request-ID, and every log line of the request too."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .logging import bind_log_context, reset_log_context
from .web_server.wsgi import WsgiApp

if TYPE_CHECKING:
    from flask import Flask

HEADER = "X-Request-ID"
ENVIRON_KEY = "HTTP_X_REQUEST_ID"

# A caller's id is echoed only if it is short and plain, so it cannot forge log content.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id_for(environ: dict[str, Any]) -> str:
    """The caller's id if it is sane, else a new one: 128 random bits in hex, as unique as a
    UUID4's hex without building a UUID on every request."""
    candidate = environ.get(ENVIRON_KEY, "")
    return candidate if SANE_REQUEST_ID.fullmatch(candidate) else secrets.token_hex(16)


class RequestIds:
    """WSGI middleware around the whole app, so that everything it logs for a request (its
    errors included) carries the id, and whatever it answers returns the id to the caller."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """Run the app with the request's id bound for logging and echoed in the response."""
        request_id = request_id_for(environ)

        def start_with_id(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers[:] = [header for header in headers if header[0].lower() != "x-request-id"]
            headers.append((HEADER, request_id))
            return start_response(status, headers, exc_info)

        token = bind_log_context(request_id=request_id)
        try:
            return self.app(environ, start_with_id)
        finally:
            reset_log_context(token)


def init_app(app: Flask) -> None:
    """Give every request an id before anything else runs."""
    app.wsgi_app = RequestIds(app.wsgi_app)  # type: ignore[method-assign]
