"""Supply chain: `make audit`, which CI runs on every push, fails on a known vulnerability in a
locked package.

The real vulnerability database (OSV) is on the internet, so these tests point the audit at a
stand-in on 127.0.0.1 that speaks OSV's query API: they run offline and cannot go red because
of an advisory published today. CI's audit job asks the real one.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import canonicalize_name

from .locks import LOCKS, lock_pins
from .processes import PROJECT_ROOT

pytestmark = pytest.mark.processes


@dataclass
class VulnerabilityFeed:
    """What the stand-in knows (package name -> advisory id) and what it was asked."""

    url: str
    advisories: dict[str, str] = field(default_factory=dict)
    asked: set[tuple[str, str]] = field(default_factory=set)

    def answer(self, query: dict[str, Any]) -> dict[str, Any]:
        """OSV's answer to one query: {} when the package version has no advisory."""
        name, version = query["package"]["name"], query["version"]
        self.asked.add((name, version))
        if name not in self.advisories:
            return {}
        affected = {
            "package": {"name": name, "ecosystem": "PyPI"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "999"}]}],
        }
        advisory = {"id": self.advisories[name], "summary": "test", "affected": [affected]}
        return {"vulns": [advisory]}


@pytest.fixture
def feed() -> Iterator[VulnerabilityFeed]:
    """A vulnerability database on a free port of 127.0.0.1, answering OSV's /v1/query."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    feed = VulnerabilityFeed(url=f"http://127.0.0.1:{server.server_port}/v1/query")

    class OsvQuery(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            body = json.dumps(feed.answer(query)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Keep the test's output for the audit's own."""

    server.RequestHandlerClass = OsvQuery
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield feed
    server.shutdown()
    server.server_close()
    thread.join()


def locked_packages() -> set[tuple[str, str]]:
    """Every (name, version) the locks pin for this machine, named as OSV's queries name them.

    A pin whose environment marker excludes this machine (colorama on Windows only, say) is
    not installed here, and not audited here either.
    """
    pins: set[tuple[str, str]] = set()
    for lock in LOCKS:
        for requirement in lock_pins(PROJECT_ROOT / lock):
            if requirement.marker is None or requirement.marker.evaluate():
                (specifier,) = requirement.specifier
                pins.add((canonicalize_name(requirement.name), specifier.version))
    return pins


def audit(feed: VulnerabilityFeed, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`make audit`, as CI runs it, asking the stand-in instead of OSV."""
    extra = f"--osv-url {feed.url} --cache-dir {tmp_path / 'cache'} --timeout 10"
    return subprocess.run(
        ["make", "--no-print-directory", "audit", f"AUDIT_ARGS={extra}"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_audit_asks_about_every_locked_package_and_passes_when_none_is_vulnerable(
    feed: VulnerabilityFeed, tmp_path: Path
) -> None:
    result = audit(feed, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No known vulnerabilities found" in result.stdout + result.stderr
    assert locked_packages() <= feed.asked, locked_packages() - feed.asked


def test_audit_fails_naming_the_advisory_when_a_locked_package_has_one(
    feed: VulnerabilityFeed, tmp_path: Path
) -> None:
    feed.advisories["flask"] = "PYSEC-0000-STANDIN"
    result = audit(feed, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert re.search(r"^flask\s+\S+\s+PYSEC-0000-STANDIN\s+999$", output, re.MULTILINE), output
