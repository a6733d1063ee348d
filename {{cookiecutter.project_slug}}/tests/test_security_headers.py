"""Security headers on every response, no server banner, and proxies believed only if named.

A proxy is named in FORWARDED_ALLOW_IPS; the tests with the real gunicorn send from 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.config import Settings

from .environments import revised, service_environment
from .http_client import Exchange, http_exchange
from .processes import RunningService, web_process

# A JSON API lets a browser load, frame and sniff nothing, and tells nobody where it was.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}
STRICT_TRANSPORT = "Strict-Transport-Security"
# What a client that reaches the port itself could send to pass for a proxy's client.
SPOOFED_PROXY_HEADERS = {
    "X-Forwarded-For": "203.0.113.9",
    "X-Forwarded-Proto": "https",
    "Forwarded": "for=203.0.113.9;proto=https",
}

REQUESTS: dict[str, Callable[[FlaskClient], TestResponse]] = {
    "healthz": lambda client: client.get("/healthz"),
    "readyz": lambda client: client.get("/readyz"),
    "version": lambda client: client.get("/version"),
    "openapi": lambda client: client.get("/openapi.json"),
    "created": lambda client: client.post("/api/todos", json={"title": "headers"}),
    "listed": lambda client: client.get("/api/todos"),
    "unknown route": lambda client: client.get("/no/such/route"),
    "wrong method": lambda client: client.put("/api/todos"),
    "malformed json": lambda client: client.post(
        "/api/todos", data="{", content_type="application/json"
    ),
    "wrong content type": lambda client: client.post(
        "/api/todos", data="x", content_type="text/plain"
    ),
    "invalid field": lambda client: client.post("/api/todos", json={"title": ""}),
}


def assert_security_headers(headers: dict[str, str]) -> None:
    """The security headers are all there, and nothing names the server."""
    lowered = {name.lower(): value for name, value in headers.items()}
    for name, value in SECURITY_HEADERS.items():
        assert lowered.get(name.lower()) == value, name
    assert "server" not in lowered
    assert "x-powered-by" not in lowered


@pytest.mark.parametrize("send", list(REQUESTS.values()), ids=list(REQUESTS))
def test_every_kind_of_response_carries_the_security_headers(
    client: FlaskClient, send: Callable[[FlaskClient], TestResponse]
) -> None:
    response = send(client)
    assert_security_headers(dict(response.headers))
    assert STRICT_TRANSPORT not in response.headers


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({"max_content_length": 64}, 413),
        ({"database_url": "postgresql://postgres@127.0.0.1:1/none"}, 503),
    ],
    ids=["body too large", "database down"],
)
def test_errors_outside_the_views_carry_them_too(
    settings: Settings, changes: dict[str, object], status: int
) -> None:
    app = create_app(revised(settings, **changes))
    response = app.test_client().post("/api/todos", json={"title": "x" * 100})
    assert response.status_code == status
    assert_security_headers(dict(response.headers))
    app.extensions["database"].dispose()


def test_an_unexpected_error_carries_them_too(failing_client: FlaskClient) -> None:
    response = failing_client.get("/boom")
    assert response.status_code == 500
    assert_security_headers(dict(response.headers))


def test_strict_transport_security_is_sent_over_https_only(client: FlaskClient) -> None:
    assert STRICT_TRANSPORT not in client.get("/healthz").headers
    secure = client.get("/healthz", base_url="https://localhost")
    assert secure.headers[STRICT_TRANSPORT] == "max-age=31536000"


def test_flask_alone_believes_no_proxy_header(client: FlaskClient) -> None:
    response = client.get(
        "/healthz", headers=SPOOFED_PROXY_HEADERS, environ_base={"REMOTE_ADDR": "127.0.0.1"}
    )
    assert STRICT_TRANSPORT not in response.headers


def get_with_spoofed_proxy_headers(service: RunningService, request_id: str) -> Exchange:
    """GET /healthz from 127.0.0.1 as a client pretending to come through a proxy."""
    return http_exchange(
        "GET",
        f"{service.base_url}/healthz",
        headers={**SPOOFED_PROXY_HEADERS, "X-Request-ID": request_id},
    )


@pytest.mark.processes
def test_gunicorn_sends_the_headers_and_no_server_banner(shared_service: RunningService) -> None:
    base_url = shared_service.base_url
    answers = [
        http_exchange("GET", f"{base_url}{path}")
        for path in ("/healthz", "/readyz", "/version", "/openapi.json", "/api/todos", "/nope")
    ]
    answers.append(http_exchange("DELETE", f"{base_url}/healthz"))
    assert [answer.status for answer in answers] == [200, 200, 200, 200, 200, 404, 405]
    for answer in answers:
        assert answer.header("Server") is None
        assert_security_headers(dict(answer.headers))


@pytest.mark.processes
def test_by_default_gunicorn_believes_no_proxy_header(shared_service: RunningService) -> None:
    answer = get_with_spoofed_proxy_headers(shared_service, "spoofed-1")
    assert answer.status == 200
    assert answer.header(STRICT_TRANSPORT) is None
    assert shared_service.access_event("spoofed-1")["remote_addr"] == "127.0.0.1"


@pytest.mark.processes
@pytest.mark.parametrize("trusted", ["127.0.0.1", "*"])
def test_a_proxy_in_forwarded_allow_ips_is_believed(
    database_url: str, tmp_path: Path, trusted: str
) -> None:
    environment = service_environment(
        database_url, WEB_CONCURRENCY="1", FORWARDED_ALLOW_IPS=trusted
    )
    with web_process(environment, tmp_path) as service:
        answer = get_with_spoofed_proxy_headers(service, "proxied-1")
        chained = http_exchange(
            "GET",
            f"{service.base_url}/healthz",
            headers={"X-Forwarded-For": "198.51.100.7, 203.0.113.9", "X-Request-ID": "proxied-2"},
        )
        standard = http_exchange(
            "GET",
            f"{service.base_url}/healthz",
            headers={"Forwarded": SPOOFED_PROXY_HEADERS["Forwarded"], "X-Request-ID": "proxied-3"},
        )
    assert answer.header(STRICT_TRANSPORT) == "max-age=31536000"
    assert service.access_event("proxied-1")["remote_addr"] == "203.0.113.9"
    # The right-most address was added by the trusted proxy; the rest is the client's to say.
    assert chained.status == 200
    assert service.access_event("proxied-2")["remote_addr"] == "203.0.113.9"
    # Nothing reads the standard Forwarded header, even from a trusted proxy.
    assert standard.header(STRICT_TRANSPORT) is None
    assert service.access_event("proxied-3")["remote_addr"] == "127.0.0.1"
