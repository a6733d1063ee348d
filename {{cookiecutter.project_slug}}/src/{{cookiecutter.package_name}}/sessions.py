"""Flask's signed-cookie session, opened only for a request that sends a cookie.

The API itself keeps no session (factor VI: state lives in the database), yet Flask opens
one for every request, building a signer from SECRET_KEY each time: about a tenth of a
request to /healthz. A request without a Cookie header has no session to read, so it gets
an empty one at once; a request with one, and any code that writes the session, gets
Flask's behaviour unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

if TYPE_CHECKING:
    from flask import Flask, Request


class CookieSessionInterface(SecureCookieSessionInterface):
    """Reads the session cookie only when the request has cookies at all."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        """An empty session when there is no cookie to read; otherwise Flask's own."""
        if app.secret_key and not request.environ.get("HTTP_COOKIE"):
            return self.session_class()
        return super().open_session(app, request)


def init_app(app: Flask) -> None:
    """Use the interface for every request."""
    app.session_interface = CookieSessionInterface()
