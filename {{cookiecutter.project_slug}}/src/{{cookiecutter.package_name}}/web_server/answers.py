"""What gunicorn writes on its own: the head of every answer, and the answer to a request
it refuses before the app sees it. Both are made to look like the service's own answers.

Each worker installs them as it starts (concurrency.py), since gunicorn offers no setting
for either (see gunicorn_internals.py).
"""

from __future__ import annotations

import functools
import inspect
import json
import socket
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import gunicorn.util
from gunicorn.http.wsgi import Response

from ..security_headers import SECURITY_HEADERS


# gunicorn writes "Server: gunicorn" on every answer, and no setting turns that off, so its
# header lines are wrapped to leave that one out.
def without_server_banner(default_headers: Callable[[Response], list[str]]) -> Any:
    """gunicorn's header lines of an answer, less the Server line."""

    @functools.wraps(default_headers)
    def headers(response: Response) -> list[str]:
        return [line for line in default_headers(response) if not line.startswith("Server:")]

    return headers


# A request gunicorn cannot parse (not HTTP, a request line or headers too long, broken
# chunked framing) never reaches the app: gunicorn answers it with an HTML page of its own.
# Every error of this service is a problem document, so that page is one too. Its detail is
# the status's standard description: gunicorn's message would echo the input.
def write_problem(sock: socket.socket, status: int, reason: str, _message: str) -> None:
    """gunicorn's answer to a request it refused, as application/problem+json."""
    problem = {
        "type": "about:blank",
        "title": reason,
        "status": status,
        "detail": HTTPStatus(status).description,
    }
    body = json.dumps(problem).encode()
    head = [
        f"HTTP/1.1 {status} {reason}",
        "Connection: close",
        "Content-Type: application/problem+json",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in SECURITY_HEADERS.items()),
    ]
    sock.sendall("\r\n".join([*head, "", ""]).encode("latin-1") + body)


def install_service_answers() -> None:
    """Make gunicorn write the service's heads and problem documents. Installing twice
    changes nothing: the header lines are unwrapped before they are wrapped."""
    Response.default_headers = without_server_banner(  # type: ignore[method-assign]
        inspect.unwrap(Response.default_headers)
    )
    gunicorn.util.write_error = write_problem
