"""Security headers on every response, errors included: the browser gets nothing to misuse."""

from __future__ import annotations

from flask import Flask, Response, request

# A JSON API has no page to render, frame or leave from, so the browser may load nothing,
# guess no content type, and tell no other site where the user came from.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}
# Over HTTPS only: browsers ignore it on plain HTTP. Whether a request came over HTTPS
# behind a proxy is believed only from the proxies in FORWARDED_ALLOW_IPS (gunicorn.conf.py).
STRICT_TRANSPORT_SECURITY = "max-age=31536000"


def add_security_headers(response: Response) -> Response:
    """Set each header the view has not set itself (an HTML page may need its own policy)."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", STRICT_TRANSPORT_SECURITY)
    return response


def init_app(app: Flask) -> None:
    """Add the headers to every response the app sends."""
    app.after_request(add_security_headers)
