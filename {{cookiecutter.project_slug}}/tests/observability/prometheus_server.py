"""A real Prometheus server for the tests: started on loopback, scraping what a test names.

Its binary is `prometheus` on PATH (Debian's package puts it at /usr/bin/prometheus), or the
one at TEST_PROMETHEUS. Without one, the tests that need it skip saying why, unless
TEST_REQUIRE_PROMETHEUS=1 makes that a failure (the template's own runs set it).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from ..http_client import http_get
from ..processes import free_port, stop_process, wait_until_serving

# Every second, so a test waits a few seconds for a count, not Prometheus's default minute.
SCRAPE_INTERVAL = "1s"
# Long enough for Prometheus to start and scrape a few times on a busy shared machine.
QUERY_WAIT_SECONDS = 30
JOB = "service"


def no_prometheus(reason: str) -> NoReturn:
    """Skip for want of Prometheus, or fail if this run was told it must be there."""
    if os.environ.get("TEST_REQUIRE_PROMETHEUS") == "1":
        pytest.fail(f"TEST_REQUIRE_PROMETHEUS=1, but {reason}", pytrace=False)
    pytest.skip(reason)


def prometheus_binary() -> Path:
    """The Prometheus server to run: TEST_PROMETHEUS, else `prometheus` on PATH."""
    named = os.environ.get("TEST_PROMETHEUS")
    if named:
        if not (Path(named).is_file() and os.access(named, os.X_OK)):
            no_prometheus(f"TEST_PROMETHEUS={named} is not an executable file")
        return Path(named)
    found = shutil.which("prometheus")
    if found is None:
        no_prometheus(
            "no prometheus on PATH: install it (Debian: apt-get install prometheus), "
            "or name the binary in TEST_PROMETHEUS"
        )
    return Path(found)


@dataclass
class Prometheus:
    """A running Prometheus server and the file its output goes to."""

    base_url: str
    process: subprocess.Popen[bytes]
    output_path: Path

    def output(self, lines: int = 30) -> str:
        """The last lines Prometheus wrote, for failure messages."""
        text = self.output_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def query(self, expression: str) -> list[dict[str, object]]:
        """The instant vector of a PromQL expression, evaluated now: one entry per series."""
        url = f"{self.base_url}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
        status, body = http_get(url)
        assert status == 200, f"{expression}: {status} {body!r}"
        answer = json.loads(body)
        assert answer["status"] == "success", answer
        result: list[dict[str, object]] = answer["data"]["result"]
        return result

    def value(self, expression: str) -> float | None:
        """The value of an expression that yields at most one series; None if it yields none."""
        result = self.query(expression)
        assert len(result) <= 1, f"{expression} yields {len(result)} series: {result}"
        if not result:
            return None
        sample = result[0]["value"]
        assert isinstance(sample, list)
        return float(sample[1])

    def targets(self) -> str:
        """What Prometheus says of each target: its health and its last scrape error."""
        status, body = http_get(f"{self.base_url}/api/v1/targets")
        if status != 200:
            return f"/api/v1/targets answered {status}"
        active = json.loads(body)["data"]["activeTargets"]
        return "; ".join(
            f"{target['scrapeUrl']} {target['health']} {target['lastError']!r}" for target in active
        )

    def wait_for_value(
        self, expression: str, expected: float, seconds: float = QUERY_WAIT_SECONDS
    ) -> None:
        """Poll until the expression's value is exactly expected; fail showing what was seen."""
        stop_at = time.monotonic() + seconds
        seen: float | None = None
        while time.monotonic() < stop_at:
            seen = self.value(expression)
            if seen == expected:
                return
            time.sleep(0.25)
        pytest.fail(
            f"after {seconds} s Prometheus still gives {expression} = {seen}, not {expected}\n"
            f"targets: {self.targets()}\nits last lines:\n{self.output()}",
            pytrace=False,
        )


def configuration(targets: list[str]) -> str:
    """A Prometheus configuration that scrapes the targets (host:port) every second."""
    # JSON is YAML, and json.dumps quotes whatever the targets hold.
    return json.dumps(
        {
            "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL},
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": targets}]}],
        }
    )


@contextlib.contextmanager
def prometheus_server(binary: Path, targets: list[str], folder: Path) -> Iterator[Prometheus]:
    """Run Prometheus on a free loopback port, its data in folder; stop it by its PID."""
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "prometheus.yml"
    config_path.write_text(configuration(targets))
    port = free_port()
    output_path = folder / "prometheus.log"
    with output_path.open("wb") as output:
        process = subprocess.Popen(
            [
                str(binary),
                f"--config.file={config_path}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            cwd=folder,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = Prometheus(f"http://127.0.0.1:{port}", process, output_path)
    try:
        try:
            wait_until_serving(f"{server.base_url}/-/ready", process)
        except (RuntimeError, TimeoutError) as error:
            pytest.fail(f"Prometheus did not start: {error}\n{server.output()}", pytrace=False)
        yield server
    finally:
        stop_process(process)
