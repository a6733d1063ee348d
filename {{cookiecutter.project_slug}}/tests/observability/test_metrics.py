"""The Prometheus metrics: counted by route template, summed over the workers, read by a real
Prometheus server, and still right when a worker dies.

The first tests run in this process, against the app itself. Metrics are kept per process and
add up over the tests it runs, so each compares counts before and after. The others start the
web process from the Procfile with two workers, and a real Prometheus server to scrape it.

The exposition is parsed here rather than with prometheus_client: importing that library in
this process before an app has set its multiprocess folder would keep this process's counts
in memory, out of the folder that GET /metrics reads.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.observability import metrics

from ..databases import row_locked
from ..environments import service_environment
from ..http_client import http_get, http_request
from ..processes import RunningService, child_pids, comes_true, free_port, wait_for, web_process
from .prometheus_server import prometheus_binary, prometheus_server

TODO_ROUTE = "/api/todos/<int:todo_id>"
REQUESTS = "http_requests_total"
WORKERS = 2
# Requests of one round: enough that both workers take some when they are sent at once.
POSTS_PER_ROUND, GETS_PER_ROUND, CLIENTS = 10, 15, 5
# At least 40 POSTs and 60 GETs; more rounds only if one worker took every request so far.
MIN_ROUNDS, MAX_ROUNDS = 4, 12
# Seconds a test waits for a gauge; the PATCHes wait twice as long for their row lock.
WAIT = 20

Labels = frozenset[tuple[str, str]]
SAMPLE = re.compile(r"(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def samples(exposition: str) -> dict[tuple[str, Labels], float]:
    """The samples of a text exposition, by metric name and labels."""
    found = {}
    for line in exposition.splitlines():
        match = SAMPLE.fullmatch(line.strip())
        if match is not None and not line.startswith("#"):
            labels = frozenset(LABEL.findall(match["labels"] or ""))
            found[match["name"], labels] = float(match["value"])
    return found


def total(exposition: str, name: str, **labels: str) -> float:
    """The sum of the samples of a metric whose labels include those given."""
    wanted = set(labels.items())
    return sum(
        value
        for (sample, sample_labels), value in samples(exposition).items()
        if sample == name and wanted <= sample_labels
    )


def request_counts(client: FlaskClient) -> collections.Counter[tuple[str, str, str]]:
    """http_requests_total of this process, by (method, route, status), read at /metrics."""
    response = client.get("/metrics")
    assert response.status_code == 200
    counts: collections.Counter[tuple[str, str, str]] = collections.Counter()
    for (name, labels), value in samples(response.get_data(as_text=True)).items():
        if name == REQUESTS:
            label = dict(labels)
            counts[label["method"], label["route"], label["status"]] = int(value)
    return counts


def counted_between(
    client: FlaskClient, send: Callable[[], None]
) -> collections.Counter[tuple[str, str, str]]:
    """The requests counted while send() ran, leaving out the reads of /metrics themselves."""
    before = request_counts(client)
    send()
    after = request_counts(client)
    after.subtract(before)
    del after["GET", "/metrics", "200"]
    return +after  # the series that grew


@contextlib.contextmanager
def app_with(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, **variables: str
) -> Iterator[Flask]:
    """An app built while the given variables are set, as a process started with them would."""
    with monkeypatch.context() as patch:
        for name, value in variables.items():
            patch.setenv(name, value)
        application = create_app(settings)
    yield application
    application.extensions["database"].dispose()


def test_requests_are_counted_by_route_template_never_by_path(client: FlaskClient) -> None:
    def send() -> None:
        for title in ("one", "two"):
            todo_id = client.post("/api/todos", json={"title": title}).get_json()["id"]
            assert client.get(f"/api/todos/{todo_id}").status_code == 200

    counted = counted_between(client, send)
    assert counted == {("POST", "/api/todos", "201"): 2, ("GET", TODO_ROUTE, "200"): 2}
    routes = {route for _, route, _ in request_counts(client)}
    assert not [route for route in routes if re.search(r"/\d", route)], routes


def test_a_path_no_route_matches_is_counted_as_unmatched(client: FlaskClient) -> None:
    def send() -> None:
        assert client.get("/no/such/path/12345").status_code == 404

    assert counted_between(client, send) == {("GET", "<unmatched>", "404"): 1}


def test_made_up_methods_share_one_series_so_clients_cannot_add_series(
    client: FlaskClient,
) -> None:
    def send() -> None:
        for method in ("FOO", "BAR", "PURGE", "X-ANYTHING"):
            assert client.open("/api/todos", method=method).status_code == 405

    assert counted_between(client, send) == {("_OTHER", "<unmatched>", "405"): 4}


def test_the_status_label_is_the_status_the_client_got(client: FlaskClient) -> None:
    def send() -> None:
        assert client.post("/api/todos", json={"title": "kept"}).status_code == 201
        assert client.post("/api/todos", json={"title": ""}).status_code == 422
        assert client.get("/api/todos/999999").status_code == 404

    assert counted_between(client, send) == {
        ("POST", "/api/todos", "201"): 1,
        ("POST", "/api/todos", "422"): 1,
        ("GET", TODO_ROUTE, "404"): 1,
    }


def test_with_metrics_disabled_there_is_no_page_and_nothing_is_counted(
    client: FlaskClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with app_with(settings, monkeypatch, METRICS_ENABLED="false") as disabled:
        quiet = disabled.test_client()

        def send() -> None:
            assert quiet.get("/metrics").status_code == 404
            assert quiet.post("/api/todos", json={"title": "uncounted"}).status_code == 201
            assert quiet.get("/api/todos").status_code == 200

        assert counted_between(client, send) == {}


def test_with_a_metrics_port_the_app_has_no_metrics_route_and_still_counts(
    client: FlaskClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with app_with(settings, monkeypatch, METRICS_PORT=str(free_port())) as elsewhere:
        assert "/metrics" not in {rule.rule for rule in elsewhere.url_map.iter_rules()}
        other = elsewhere.test_client()

        def send() -> None:
            assert other.get("/metrics").status_code == 404
            assert other.get("/api/todos").status_code == 200

        assert counted_between(client, send) == {
            ("GET", "<unmatched>", "404"): 1,
            ("GET", "/api/todos", "200"): 1,
        }


def test_a_write_that_fails_is_logged_and_the_writer_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(metrics, "FLUSH_SECONDS", 0.01)
    tally, attempts = metrics.Tally(), []

    def fails_once() -> None:
        attempts.append("write")
        if len(attempts) == 1:
            raise OSError("No space left on device")
        tally.stopped.set()

    monkeypatch.setattr(tally, "write", fails_once)
    tally.write_every_interval()  # the thread's loop, here: it returns once stopped
    assert attempts == ["write", "write"]
    assert "metrics not written" in caplog.text
    assert "No space left on device" in caplog.text


# From here on: the web process, two workers, and Prometheus.


@pytest.fixture
def prometheus() -> Path:
    """The Prometheus binary; a test that needs it skips (or fails, if required) without."""
    return prometheus_binary()


def web_environment(database_url: str, folder: Path, **overrides: str) -> dict[str, str]:
    """The web process's variables: two workers sharing a multiprocess folder the test sees."""
    return service_environment(
        database_url,
        WEB_CONCURRENCY=str(WORKERS),
        PROMETHEUS_MULTIPROC_DIR=str(folder),
        **overrides,
    )


def workers_of(service: RunningService) -> set[int]:
    """The PIDs of the web process's workers now."""
    return set(child_pids(service.process.pid))


def pids_with(folder: Path, kind: str) -> set[int]:
    """The processes that have metric files of a kind (counter, gauge_livesum...) in folder."""
    return {int(path.stem.rsplit("_", 1)[1]) for path in folder.glob(f"{kind}_*.db")}


def send_until_both_workers_served(
    service: RunningService, folder: Path, todo_id: int, posts: bool = True
) -> tuple[int, int]:
    """Send rounds of POSTs and GETs at once until both workers have counted some.

    Which worker takes a connection is the kernel's choice, so the number of rounds varies;
    the counts returned are exactly those sent: (POSTs, GETs of the todo).
    """
    sent = collections.Counter[str]()

    def one(kind: str) -> None:
        if kind == "POST":
            status, body = http_request("POST", f"{service.base_url}/api/todos", {"title": "x"})
            assert status == 201, body
        else:
            status, body = http_get(f"{service.base_url}/api/todos/{todo_id}")
            assert status == 200, body

    def both_counted() -> bool:
        return len(pids_with(folder, "counter") & workers_of(service)) == WORKERS

    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        for rounds in range(1, MAX_ROUNDS + 1):
            kinds = ["POST"] * (POSTS_PER_ROUND if posts else 0) + ["GET"] * GETS_PER_ROUND
            for done in [pool.submit(one, kind) for kind in kinds]:
                done.result()
            sent.update(kinds)
            # A worker writes its counts a second after it answers.
            if rounds >= MIN_ROUNDS and comes_true(both_counted, 2 * metrics.FLUSH_SECONDS):
                return sent["POST"], sent["GET"]
    served = pids_with(folder, "counter") & workers_of(service)
    pytest.fail(f"after {MAX_ROUNDS} rounds only workers {served} had served a request")


def create_todo(service: RunningService) -> int:
    """A todo to read, created through the API; its id."""
    status, body = http_request("POST", f"{service.base_url}/api/todos", {"title": "read me"})
    assert status == 201, body
    todo_id: int = json.loads(body)["id"]
    return todo_id


def series_sum(metric: str, **labels: str) -> str:
    """PromQL: a metric summed over every series with the given labels."""
    matchers = ",".join(f'{name}="{value}"' for name, value in labels.items())
    # Concatenated: the project template renders this file, and doubled braces are its own.
    return "sum(" + metric + "{" + matchers + "})"


@pytest.mark.processes
def test_prometheus_reads_every_request_of_both_workers_exactly_once(
    prometheus: Path, database_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "multiproc"
    with web_process(web_environment(database_url, folder), tmp_path) as service:
        todo_id = create_todo(service)
        posts, gets = send_until_both_workers_served(service, folder, todo_id)
        target = service.base_url.removeprefix("http://")
        with prometheus_server(prometheus, [target], tmp_path / "prometheus") as server:
            server.wait_for_value('up{job="service"}', 1)
            created = posts + 1  # and the todo read
            server.wait_for_value(
                series_sum(REQUESTS, route="/api/todos", method="POST", status="201"), created
            )
            server.wait_for_value(
                series_sum(REQUESTS, route=TODO_ROUTE, method="GET", status="200"), gets
            )
            durations = series_sum("http_request_duration_seconds_count", route=TODO_ROUTE)
            server.wait_for_value(durations, gets)
            # One series per route template, none per todo.
            assert server.query('http_requests_total{route=~".*[0-9].*"}') == []


# Reads a folder's counts as GET /metrics would, in a process of its own (see the top).
READ_FOLDER = """
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
registry = CollectorRegistry()
MultiProcessCollector(registry)
print(generate_latest(registry).decode())
"""


def exposition_of(folder: Path) -> str:
    """The exposition of the metric files in folder, read after the server has stopped."""
    environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    done = subprocess.run(
        [sys.executable, "-c", READ_FOLDER],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


@pytest.mark.processes
def test_a_worker_stopped_by_gunicorn_writes_its_last_counts_as_it_exits(
    database_url: str, tmp_path: Path
) -> None:
    folder, sent = tmp_path / "multiproc", 10
    with web_process(web_environment(database_url, folder), tmp_path) as service:
        # A worker writes a second after its first request (the readiness check's), then
        # every second: right after that first write, the requests and the stop below take
        # far less than the second left before the next, so only the exit can write them.
        wait_for(lambda: pids_with(folder, "gauge_livesum"), "a worker's first write", WAIT)
        for _ in range(sent):
            assert http_get(f"{service.base_url}/api/todos")[0] == 200
    assert total(exposition_of(folder), REQUESTS, route="/api/todos") == sent


def scraped(metrics_url: str) -> str:
    """The exposition a GET of the metrics URL answers."""
    status, body = http_get(metrics_url)
    assert status == 200, body
    return body.decode()


@pytest.mark.processes
def test_on_a_metrics_port_the_master_serves_both_workers_sums_and_the_app_has_no_page(
    prometheus: Path, database_url: str, tmp_path: Path
) -> None:
    folder, port = tmp_path / "multiproc", free_port()
    environment = web_environment(database_url, folder, METRICS_PORT=str(port))
    with web_process(environment, tmp_path) as service:
        assert http_get(f"{service.base_url}/metrics")[0] == 404
        todo_id = create_todo(service)
        _, gets = send_until_both_workers_served(service, folder, todo_id, posts=False)
        metrics_url = f"http://127.0.0.1:{port}/metrics"
        # No worker is asked for the page: each writes its counts by its own timer.
        wait_for(
            lambda: total(scraped(metrics_url), REQUESTS, route=TODO_ROUTE) == gets,
            "both workers to write their counts",
            WAIT,
        )
        # With both workers stopped, only the master can answer.
        workers = workers_of(service)
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
        try:
            status, body = http_get(metrics_url)
        finally:
            for pid in workers:
                os.kill(pid, signal.SIGCONT)
        assert status == 200
        assert total(body.decode(), REQUESTS, route=TODO_ROUTE) == gets
        with prometheus_server(prometheus, [f"127.0.0.1:{port}"], tmp_path / "prom") as server:
            server.wait_for_value('up{job="service"}', 1)
            server.wait_for_value(series_sum(REQUESTS, route=TODO_ROUTE, status="200"), gets)


def in_use(metrics_url: str) -> float:
    """db_pool_connections_in_use, summed over the live workers, as the master serves it."""
    return total(scraped(metrics_url), "db_pool_connections_in_use")


# Prints a gauge as one process last wrote it, from that process's own file. In a process of
# its own, like READ_FOLDER: prometheus_client picks its storage when first imported, and the
# in-process tests need it to pick the app's multiprocess folder.
READ_GAUGE = """
import sys
from prometheus_client.multiprocess import MultiProcessCollector
metrics = MultiProcessCollector.merge([sys.argv[1]], accumulate=False)
print(sum(s.value for m in metrics if m.name == sys.argv[2] for s in m.samples))
"""


def in_use_by(folder: Path, pid: int) -> float:
    """db_pool_connections_in_use as one worker last wrote it."""
    gauge_file = folder / f"gauge_livesum_{pid}.db"
    done = subprocess.run(
        [sys.executable, "-c", READ_GAUGE, str(gauge_file), "db_pool_connections_in_use"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return float(done.stdout)


def patch_outcome(url: str) -> int | str:
    """The status a PATCH got, or the name of the error that ended it (a killed worker's)."""
    try:
        return http_request("PATCH", url, {"done": True}, timeout=60)[0]
    except OSError as error:  # the connection reset or closed with no answer
        return type(error).__name__


@pytest.mark.processes
def test_a_killed_worker_is_replaced_its_counts_stay_and_its_gauges_stop_counting(
    database_url: str, tmp_path: Path
) -> None:
    folder, port = tmp_path / "multiproc", free_port()
    # Each worker will hold a connection while its PATCH waits for a row lock: long waits.
    environment = web_environment(
        database_url,
        folder,
        METRICS_PORT=str(port),
        DATABASE_LOCK_TIMEOUT=str(2 * WAIT),
        DATABASE_STATEMENT_TIMEOUT=str(2 * WAIT),
        WEB_TIMEOUT="60",
    )
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    with web_process(environment, tmp_path) as service:
        todo_id = create_todo(service)
        _, gets = send_until_both_workers_served(service, folder, todo_id, posts=False)
        wait_for(lambda: in_use(metrics_url) == 0, "every connection back in its pool", WAIT)
        # The lock is let go first on the way out, so no PATCH is left waiting for it.
        with (
            concurrent.futures.ThreadPoolExecutor(WORKERS) as pool,
            row_locked(database_url, todo_id) as blocker,
        ):
            url = f"{service.base_url}/api/todos/{todo_id}"
            patches = [pool.submit(patch_outcome, url) for _ in range(WORKERS)]
            wait_for(lambda: in_use(metrics_url) == WORKERS, "both PATCHes to hold one", WAIT)
            # An evented worker may have taken both: kill one that holds a connection.
            holding = {pid: in_use_by(folder, pid) for pid in sorted(workers_of(service))}
            killed = next(pid for pid, held in holding.items() if held)
            kept = WORKERS - int(holding[killed])
            os.kill(killed, signal.SIGKILL)

            def replaced() -> bool:
                now = workers_of(service)
                return killed not in now and len(now) == WORKERS

            wait_for(replaced, "gunicorn to replace the killed worker", 30)
            # Read while the other PATCH still waits, its connection still out of its pool.
            wait_for(lambda: in_use(metrics_url) == kept, "the dead worker's gauge to go", WAIT)
            assert sum(not done.done() for done in patches) == kept, "a lock wait ended too soon"
            assert killed not in pids_with(folder, "gauge_livesum")
            assert killed in pids_with(folder, "counter")
            assert total(scraped(metrics_url), REQUESTS, route=TODO_ROUTE) == gets
            blocker.rollback()
            outcomes = [done.result() for done in patches]
        # The killed worker's clients lost their connections; the other's PATCH went through.
        assert outcomes.count(200) == kept, outcomes
        wait_for(lambda: in_use(metrics_url) == 0, "the other worker's connection to go back", 30)
