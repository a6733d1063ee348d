"""Which proxies are believed about the client's address (FORWARDED_ALLOW_IPS).

gunicorn believes X-Forwarded-Proto (and its other secure_scheme_headers) only from a peer
in forwarded_allow_ips; this does the same for X-Forwarded-For. Nothing else reads proxy
headers: the app has no ProxyFix, and nothing parses Forwarded. The default trusts no one
(gunicorn's own default trusts 127.0.0.1), so a client that reaches the port itself can
claim neither HTTPS nor another address.
"""

from __future__ import annotations

import ipaddress
from typing import Any


def is_ip_address(text: str) -> bool:
    """Whether text is an IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class TrustedProxies:
    """The proxies FORWARDED_ALLOW_IPS names: addresses, networks, or * for any peer."""

    def __init__(self, forwarded_allow_ips: str) -> None:
        entries = [entry for entry in forwarded_allow_ips.split(",") if entry]
        self.any_peer = "*" in entries
        self.networks = [ipaddress.ip_network(entry) for entry in entries if entry != "*"]

    def __bool__(self) -> bool:
        """Whether any proxy is trusted at all."""
        return self.any_peer or bool(self.networks)

    def names(self, address: str) -> bool:
        """Whether a network named is one this address is in (a * names none)."""
        return is_ip_address(address) and any(
            ipaddress.ip_address(address) in network for network in self.networks
        )

    def client_address(self, environ: dict[str, Any]) -> str:
        """The client's address: the peer's, or the one that trusted proxies forwarded for."""
        address: str = environ["REMOTE_ADDR"]
        trusted = self.any_peer or self.names(address)
        # Each proxy appends the address it got the request from, so read from the right
        # while the address in hand is a trusted proxy's: whatever lies further left, the
        # client wrote. A * trusts the peer alone; proxies behind it must be named too.
        for hop in reversed(environ.get("HTTP_X_FORWARDED_FOR", "").split(",")):
            candidate = hop.strip()
            if not trusted or not is_ip_address(candidate):
                break
            address = candidate
            trusted = self.names(address)
        return address
