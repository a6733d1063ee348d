"""Security headers on every response, errors included: the browser gets nothing to misuse."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .web_server.wsgi import WsgiApp

if TYPE_CHECKING:
    from flask import Flask

# A JSON API has no page to render, frame or leave from, so the browser may load nothing,
# guess no content type, and tell no other site where the user came from.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}
# Over HTTPS only: browsers ignore it on plain HTTP. Whether a request came over HTTPS
# behind a proxy is believed only from the proxies in FORWARDED_ALLOW_IPS (web_server/proxies.py).
STRICT_TRANSPORT_SECURITY = "max-age=31536000"


class SecurityHeaders:
    """WSGI middleware: adds each header the app has not set itself (an HTML page may need
    its own policy) to whatever the app answers. Done here, on the plain header list, it
    costs a set of names per response, where Flask's Headers would search once per header."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app
        # Each header with its lowercased name, against which the app's are compared.
        self.over_http = [(name.lower(), (name, value)) for name, value in SECURITY_HEADERS.items()]
        hsts = ("Strict-Transport-Security", STRICT_TRANSPORT_SECURITY)
        self.over_https = [*self.over_http, (hsts[0].lower(), hsts)]

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """Run the app, adding the headers as it starts its response."""
        added = self.over_https if environ.get("wsgi.url_scheme") == "https" else self.over_http

        def start_with_headers(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            present = {name.lower() for name, _ in headers}
            headers.extend(header for key, header in added if key not in present)
            return start_response(status, headers, exc_info)

        return self.app(environ, start_with_headers)


def init_app(app: Flask) -> None:
    """Add the headers to every response the app sends."""
    app.wsgi_app = SecurityHeaders(app.wsgi_app)  # type: ignore[method-assign]
