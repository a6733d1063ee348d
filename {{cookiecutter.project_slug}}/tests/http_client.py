"""HTTP from the tests to a server on this machine: status, headers and body, errors included."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass


def http_request(
    method: str,
    url: str,
    payload: object = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10,
) -> tuple[int, bytes]:
    """Send a request to a server on this machine; the status and body, errors included."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
    if data is not None:
        request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def http_get(url: str, headers: Mapping[str, str] | None = None) -> tuple[int, bytes]:
    """GET a URL on this machine; the status and body, errors included."""
    return http_request("GET", url, headers=headers)


@dataclass
class Exchange:
    """One request's answer, as the caller got it: status, every header line, body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The value of a header the answer carries once, or None if it has none."""
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        assert len(values) <= 1, f"{name} appears {len(values)} times"
        return values[0] if values else None


def http_exchange(
    method: str, url: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
) -> Exchange:
    """Send raw bytes to a server on this machine; the whole answer, errors included."""
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return Exchange(int(response.status), response.headers.items(), response.read())
    except urllib.error.HTTPError as error:
        return Exchange(error.code, error.headers.items(), error.read())
