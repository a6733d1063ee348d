"""Request ids: every response carries X-Request-ID, and every log line of the request too."""

from __future__ import annotations

import re
import uuid

from flask import Flask, Response, g, request

from .logging import bind_log_context, reset_log_context

HEADER = "X-Request-ID"

# A caller's id is echoed only if it is short and plain, so it cannot forge log content.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def assign_request_id() -> None:
    """Adopt the caller's id if it is sane, else make one; bind it for logging."""
    candidate = request.headers.get(HEADER, "")
    request_id = candidate if SANE_REQUEST_ID.fullmatch(candidate) else uuid.uuid4().hex
    g.request_id = request_id
    g.log_context_token = bind_log_context(request_id=request_id)


def echo_request_id(response: Response) -> Response:
    """Return the id to the caller."""
    response.headers[HEADER] = g.get("request_id") or uuid.uuid4().hex
    return response


def forget_request_id(_error: BaseException | None = None) -> None:
    """Stop stamping log lines with this request's id."""
    token = g.pop("log_context_token", None)
    if token is not None:
        reset_log_context(token)


def init_app(app: Flask) -> None:
    """Give every request an id before anything else runs."""
    app.before_request_funcs.setdefault(None, []).insert(0, assign_request_id)
    app.after_request(echo_request_id)
    app.teardown_request(forget_request_id)
