"""Every error leaves as application/problem+json (RFC 9457): never HTML, never a traceback."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from flask import Flask, Response, current_app
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException

PROBLEM_MIMETYPE = "application/problem+json"

logger = logging.getLogger(__name__)


class Problem(Exception):
    """An error the service reports to the caller as a problem document."""

    def __init__(
        self, status: int, detail: str, *, errors: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors


def problem_response(
    status: int,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A problem+json response whose title is the standard phrase of its status."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return Response(
        current_app.json.dumps(body), status=status, headers=headers, mimetype=PROBLEM_MIMETYPE
    )


def handle_problem(problem: Problem) -> Response:
    """Report an error raised by the service's own code."""
    return problem_response(problem.status, problem.detail, errors=problem.errors)


def handle_http_exception(error: HTTPException) -> Response:
    """Report a routing or protocol error (404, 405, 413, ...) with its own headers kept."""
    status = error.code or 500
    headers = {name: value for name, value in error.get_headers() if name.lower() != "content-type"}
    detail = error.description or HTTPStatus(status).description
    return problem_response(status, detail, headers=headers)


def handle_database_unavailable(error: DBAPIError | PoolTimeoutError) -> Response:
    """A database that is down or too slow to answer is the caller's 503, not our 500.

    This covers a server that does not answer, a statement cut by statement_timeout, a lock
    not granted within lock_timeout, and no pooled connection free within the pool timeout.
    """
    cause = type(error.orig if isinstance(error, DBAPIError) else error).__name__
    logger.warning("database unavailable: %s", cause)
    return problem_response(
        503,
        "The database did not answer in time; try again shortly.",
        headers={"Retry-After": "5"},
    )


def handle_unexpected(error: Exception) -> Response:
    """Log the traceback on our side and tell the caller only that something failed."""
    logger.exception("unhandled error", exc_info=error)
    return problem_response(500, "The server failed to complete the request.")


def init_app(app: Flask) -> None:
    """Install the handlers that turn every failure into a problem document.

    Under `flask run --debug` (on a developer's machine only) an unexpected error is left to
    Werkzeug's interactive debugger instead, so its traceback can be read in the browser.
    """
    app.register_error_handler(Problem, handle_problem)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(OperationalError, handle_database_unavailable)
    app.register_error_handler(PoolTimeoutError, handle_database_unavailable)
    if not app.debug:
        app.register_error_handler(Exception, handle_unexpected)
