"""The worker process type: Celery on the real Redis, with nothing lost and nothing doubled."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import URL, create_engine, text

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.config import ConfigError, Settings
from {{ cookiecutter.package_name }}.task_queue.settings import TaskQueueSettings
from {{ cookiecutter.package_name }}.task_queue.tasks import archive_todo

from .. import test_secrets
from ..databases import (
    create_database,
    drop_database,
    migrate,
    rename_database,
    row_locked,
    update_waits_for_lock,
)
from ..environments import service_environment
from ..processes import WAIT_SECONDS, run_process, wait_for, web_process
from .celery_workers import ARCHIVED, HARD_TIME_LIMIT, RETRY, SOFT_TIME_LIMIT, worker_process
from .plugin import TEST_REDIS_URL

pytestmark = pytest.mark.usefixtures("empty_task_queue")


def create_todos(client: FlaskClient, count: int) -> list[int]:
    """Create todos through the API; their ids."""
    return [
        client.post("/api/todos", json={"title": f"todo {number}"}).get_json()["id"]
        for number in range(count)
    ]


def archived_ids(database_url: str) -> set[int]:
    """The todos the database holds as archived."""
    engine = create_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT id FROM todos WHERE archived_at IS NOT NULL"))
        ids = {int(row.id) for row in rows}
    engine.dispose()
    return ids


def archived_at(client: FlaskClient, todo_id: int) -> str | None:
    """When the API says the todo was archived, if it was."""
    value: str | None = client.get(f"/api/todos/{todo_id}").get_json()["archived_at"]
    return value


def test_archive_task_run_twice_has_the_effect_of_once(app: Flask, client: FlaskClient) -> None:
    (todo_id,) = create_todos(client, 1)
    with app.app_context():
        assert archive_todo.apply(args=(todo_id,)).get() is True
        assert archive_todo.apply(args=(todo_id,)).get() is False
    assert client.get(f"/api/todos/{todo_id}").get_json()["archived_at"] is not None


def test_the_api_document_says_archived_at_is_a_time_or_null(client: FlaskClient) -> None:
    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]
    assert schemas["TodoOut"]["properties"]["archived_at"] == {
        "anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]
    }


def test_archiving_an_unknown_todo_is_404_and_enqueues_nothing(client: FlaskClient) -> None:
    response = client.post("/api/todos/999999/archive")
    assert response.status_code == 404
    assert redis.Redis.from_url(TEST_REDIS_URL).llen("celery") == 0


def test_a_broker_that_is_down_gives_503(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    app = create_app(settings)
    client = app.test_client()
    (todo_id,) = create_todos(client, 1)
    response = client.post(f"/api/todos/{todo_id}/archive")
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    ready = client.get("/readyz").get_json()
    assert ready["checks"] == {"database": "ok", "redis": "unavailable"}


@pytest.mark.processes
@pytest.mark.parametrize("process_type", ["web", "worker"])
def test_a_process_without_redis_url_stops_at_once_naming_it(
    database_url: str, process_type: str
) -> None:
    environment = service_environment(database_url)
    del environment["REDIS_URL"]
    result = run_process(process_type, environment)
    assert result.returncode == 1
    assert "configuration error: REDIS_URL is required but not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_readyz_checks_redis(client: FlaskClient) -> None:
    assert client.get("/readyz").get_json()["checks"] == {"database": "ok", "redis": "ok"}


@pytest.mark.processes
def test_api_enqueues_and_a_real_worker_process_archives(
    client: FlaskClient, database_url: str, tmp_path: Path
) -> None:
    (todo_id,) = create_todos(client, 1)
    response = client.post(f"/api/todos/{todo_id}/archive", headers={"X-Request-ID": "enqueue-1"})
    assert response.status_code == 202
    assert response.headers["Location"] == f"/api/todos/{todo_id}"
    # Checked before any worker runs: the web process only enqueues, and a fast worker would
    # otherwise archive the todo before this line reads it.
    assert archived_at(client, todo_id) is None
    with worker_process(database_url, tmp_path, "solo") as worker:
        wait_for(lambda: archived_at(client, todo_id), "the worker to archive the todo")
    (archived,) = [event for event in worker.events() if event["message"] == ARCHIVED]
    assert archived["request_id"] == "enqueue-1"
    assert archived["task_id"] == response.get_json()["task_id"]
    assert archived["release"]


@pytest.mark.processes
def test_sigterm_lets_the_worker_finish_the_task_in_hand_and_exit_zero(
    client: FlaskClient, database_url: str, tmp_path: Path
) -> None:
    (todo_id,) = create_todos(client, 1)
    with (
        row_locked(database_url, todo_id) as blocker,
        worker_process(database_url, tmp_path, "graceful") as worker,
    ):
        assert client.post(f"/api/todos/{todo_id}/archive").status_code == 202
        wait_for(lambda: update_waits_for_lock(database_url), "the task to block on the lock")
        worker.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert worker.process.poll() is None, "the worker quit with a task in hand"
        blocker.rollback()
        assert worker.process.wait(timeout=WAIT_SECONDS) == 0
    assert worker.archived_todo_ids() == [todo_id]
    assert archived_ids(database_url) == {todo_id}


@pytest.mark.processes
def test_two_workers_share_many_tasks_and_each_takes_effect_once(
    client: FlaskClient, database_url: str, tmp_path: Path
) -> None:
    todo_ids = create_todos(client, 30)
    with (
        worker_process(database_url, tmp_path, "first") as first,
        worker_process(database_url, tmp_path, "second") as second,
    ):
        # Every todo is archived twice over: the second task of each must change nothing.
        for todo_id in todo_ids + todo_ids:
            assert client.post(f"/api/todos/{todo_id}/archive").status_code == 202
        wait_for(lambda: first.tasks_done() + second.tasks_done() == 60, "all 60 archive tasks")
    assert archived_ids(database_url) == set(todo_ids)
    by_first, by_second = first.archived_todo_ids(), second.archived_todo_ids()
    assert sorted(by_first + by_second) == sorted(todo_ids)
    assert by_first, "the first worker took no task"
    assert by_second, "the second worker took no task"


# Time limits short enough for a test, and database waits longer than them: a task blocked on
# a row lock stays stuck in C code (the database driver's wait), where only the hard limit
# can end it.
SOFT_LIMIT_SECONDS, HARD_LIMIT_SECONDS = 2, 4
SHORT_TIME_LIMITS = {
    "TASK_SOFT_TIME_LIMIT": str(SOFT_LIMIT_SECONDS),
    "TASK_TIME_LIMIT": str(HARD_LIMIT_SECONDS),
    "BROKER_VISIBILITY_TIMEOUT": "30",
    "DATABASE_LOCK_TIMEOUT": "20",
    "DATABASE_STATEMENT_TIMEOUT": "20",
}


def broker_holds_no_message() -> bool:
    """True when the broker has no task waiting and none handed out but unacknowledged."""
    client = redis.Redis.from_url(TEST_REDIS_URL)
    waiting, unacknowledged = client.llen("celery"), client.hlen("unacked")
    client.close()
    return waiting == unacknowledged == 0


@pytest.mark.parametrize(
    ("limits", "problem"),
    [
        ({"task_soft_time_limit": 300}, "TASK_SOFT_TIME_LIMIT must be shorter than"),
        ({"broker_visibility_timeout": 300}, "BROKER_VISIBILITY_TIMEOUT must be longer than"),
    ],
)
def test_task_time_limits_out_of_order_are_refused(limits: dict[str, int], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        TaskQueueSettings.load(**limits)


def test_the_web_process_leaves_the_time_limits_to_the_worker(client: FlaskClient) -> None:
    # Celery lets a limit sent in the message win over the worker's own; none is sent.
    (todo_id,) = create_todos(client, 1)
    assert client.post(f"/api/todos/{todo_id}/archive").status_code == 202
    message = json.loads(redis.Redis.from_url(TEST_REDIS_URL).lindex("celery", 0) or "{}")
    assert message["headers"]["timelimit"] == [None, None]


@pytest.mark.processes
def test_a_task_stuck_in_a_database_call_is_killed_at_the_hard_limit_and_the_worker_goes_on(
    client: FlaskClient, database_url: str, tmp_path: Path
) -> None:
    stuck_id, next_id = create_todos(client, 2)
    with (
        row_locked(database_url, stuck_id) as blocker,
        worker_process(database_url, tmp_path, "hard", **SHORT_TIME_LIMITS) as worker,
    ):
        task_id = client.post(f"/api/todos/{stuck_id}/archive").get_json()["task_id"]
        wait_for(lambda: update_waits_for_lock(database_url), "the task to block on the lock")
        wait_for(lambda: worker.messages(HARD_TIME_LIMIT), "the hard time limit to kill the task")
        assert client.post(f"/api/todos/{next_id}/archive").status_code == 202
        wait_for(lambda: worker.archived_todo_ids() == [next_id], "the worker to run the next task")
        blocker.rollback()
    received = worker.logged_at(f"[{task_id}] received")
    soft = (worker.logged_at(SOFT_TIME_LIMIT) - received).total_seconds()
    hard = (worker.logged_at(HARD_TIME_LIMIT) - received).total_seconds()
    print(f"soft limit logged after {soft:.2f} s, hard limit after {hard:.2f} s")
    assert SOFT_LIMIT_SECONDS <= soft < HARD_LIMIT_SECONDS
    assert HARD_LIMIT_SECONDS <= hard < HARD_LIMIT_SECONDS + 2
    # The killed task failed for good, and says so: its message was acknowledged, not retried.
    assert task_id in worker.messages(HARD_TIME_LIMIT)[0]
    assert worker.messages(RETRY) == []
    assert broker_holds_no_message()
    assert archived_ids(database_url) == {next_id}


@pytest.mark.processes
def test_a_task_over_its_soft_limit_gets_the_exception_rolls_back_and_is_retried(
    client: FlaskClient, database_url: str, tmp_path: Path
) -> None:
    (todo_id,) = create_todos(client, 1)
    with (
        row_locked(database_url, todo_id) as blocker,
        worker_process(database_url, tmp_path, "soft", **SHORT_TIME_LIMITS) as worker,
    ):
        task_id = client.post(f"/api/todos/{todo_id}/archive").get_json()["task_id"]
        wait_for(lambda: update_waits_for_lock(database_url), "the task to block on the lock")
        wait_for(lambda: worker.messages(SOFT_TIME_LIMIT), "the soft time limit")
        # The exception is raised once the blocked call returns: let it, before the hard limit.
        blocker.rollback()
        wait_for(lambda: worker.archived_todo_ids() == [todo_id], "the retry to archive the todo")
    received = worker.logged_at(f"[{task_id}] received")
    soft = (worker.logged_at(SOFT_TIME_LIMIT) - received).total_seconds()
    retried = (worker.logged_at(RETRY) - received).total_seconds()
    print(f"soft limit logged after {soft:.2f} s, the task retried after {retried:.2f} s")
    assert SOFT_LIMIT_SECONDS <= soft < retried < HARD_LIMIT_SECONDS
    (retry,) = worker.messages(RETRY)
    assert "SoftTimeLimitExceeded" in retry
    assert worker.messages(HARD_TIME_LIMIT) == []
    assert archived_ids(database_url) == {todo_id}


@pytest.mark.processes
def test_a_task_blocked_past_the_lock_timeout_ends_by_itself_and_is_retried(
    client: FlaskClient, database_url: str, tmp_path: Path
) -> None:
    (todo_id,) = create_todos(client, 1)
    limits = {**SHORT_TIME_LIMITS, "DATABASE_LOCK_TIMEOUT": "1"}
    with (
        row_locked(database_url, todo_id) as blocker,
        worker_process(database_url, tmp_path, "bounded", **limits) as worker,
    ):
        assert client.post(f"/api/todos/{todo_id}/archive").status_code == 202
        wait_for(lambda: worker.messages(RETRY), "the blocked statement to give up")
        blocker.rollback()
        wait_for(lambda: worker.archived_todo_ids() == [todo_id], "the retry to archive the todo")
    gave_up = (worker.logged_at(RETRY) - worker.logged_at("] received")).total_seconds()
    print(f"the blocked statement gave up after {gave_up:.2f} s")
    assert gave_up < SOFT_LIMIT_SECONDS
    assert "lock timeout" in worker.messages(RETRY)[0]
    assert worker.messages(SOFT_TIME_LIMIT) == []
    assert archived_ids(database_url) == {todo_id}


@pytest.mark.processes
def test_sigterm_with_a_stuck_task_exits_zero_once_the_hard_limit_has_killed_it(
    client: FlaskClient, database_url: str, tmp_path: Path
) -> None:
    # The grace periods of docker-compose.yml and the Kubernetes worker rest on this.
    (todo_id,) = create_todos(client, 1)
    with (
        row_locked(database_url, todo_id),
        worker_process(database_url, tmp_path, "stuck", **SHORT_TIME_LIMITS) as worker,
    ):
        assert client.post(f"/api/todos/{todo_id}/archive").status_code == 202
        wait_for(lambda: update_waits_for_lock(database_url), "the task to block on the lock")
        signalled = time.monotonic()
        worker.process.send_signal(signal.SIGTERM)
        assert worker.process.wait(timeout=WAIT_SECONDS) == 0
        took = time.monotonic() - signalled
    print(f"exited {took:.2f} s after SIGTERM")
    # The kill comes at the hard limit; stopping the pool and the broker connection follows.
    assert took < HARD_LIMIT_SECONDS + 5
    assert worker.messages(HARD_TIME_LIMIT)
    assert archived_ids(database_url) == set()


@pytest.mark.processes
def test_a_task_whose_worker_is_killed_midway_is_run_again_by_another(
    client: FlaskClient, database_url: str, tmp_path: Path
) -> None:
    (todo_id,) = create_todos(client, 1)
    # Short limits, so the broker hands the lost task on within seconds.
    limits = {**SHORT_TIME_LIMITS, "BROKER_VISIBILITY_TIMEOUT": "5"}
    with row_locked(database_url, todo_id) as blocker:
        with worker_process(database_url, tmp_path, "doomed", **limits) as doomed:
            assert client.post(f"/api/todos/{todo_id}/archive").status_code == 202
            wait_for(lambda: update_waits_for_lock(database_url), "the task to block on the lock")
            os.killpg(doomed.process.pid, signal.SIGKILL)
            doomed.process.wait()
        blocker.rollback()
        assert archived_ids(database_url) == set()
        with worker_process(database_url, tmp_path, "rescuer", **limits) as rescuer:
            wait_for(lambda: rescuer.tasks_done() == 1, "the lost task to be run again")
        assert rescuer.archived_todo_ids() == [todo_id]
        assert archived_ids(database_url) == {todo_id}


@pytest.mark.processes
def test_a_task_retries_while_the_database_is_away_and_succeeds_once_it_is_back(
    app: Flask, admin_url: URL, tmp_path: Path
) -> None:
    name = f"test_late_{uuid.uuid4().hex[:12]}"
    late_url = admin_url.set(database=name).render_as_string(hide_password=False)
    # Made ready under another name, the database appears whole, at once, by a rename: the
    # task's retries (jittered backoff, MAX_RETRIES) could run out while it was migrated.
    ready = f"{name}_ready"
    ready_url = admin_url.set(database=ready).render_as_string(hide_password=False)
    try:
        create_database(admin_url, ready)
        migrate(ready_url, "head")
        engine = create_engine(ready_url)
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO todos (title) VALUES ('late')"))
        engine.dispose()
        # The worker starts before its database exists: every attempt fails to connect.
        with worker_process(late_url, tmp_path, "patient") as worker:
            with app.app_context():
                archive_todo.delay(1)
            wait_for(
                lambda: any("retry" in event["message"].lower() for event in worker.events()),
                "the task to be retried",
            )
            rename_database(admin_url, ready, name)
            wait_for(lambda: worker.archived_todo_ids() == [1], "a retry to succeed")
        assert archived_ids(late_url) == {1}
    finally:
        drop_database(admin_url, ready)
        drop_database(admin_url, name)


# The secrets tests' role fixture, for the worker's own secrets test below.
role = test_secrets.role


@pytest.mark.processes
def test_the_worker_never_shows_a_secret(role: test_secrets.Role, tmp_path: Path) -> None:
    database_url = role.url("postgresql")
    environment = test_secrets.secret_environment(database_url, "environment", tmp_path / "secrets")
    transcript = test_secrets.Transcript()
    release = run_process("release", environment)
    transcript.add_process("release", release)
    assert release.returncode == 0, release.stderr
    with (
        worker_process(
            database_url,
            tmp_path,
            "secrets",
            SECRET_KEY=test_secrets.SECRET_KEY,
            **test_secrets.OPTION_SECRETS,
        ) as worker,
        web_process(environment, tmp_path) as service,
    ):
        created = test_secrets.call(
            transcript, service, "POST", "/api/todos", 201, b'{"title": "t"}', test_secrets.JSON
        )
        todo_id = int(str(created.header("Location")).rsplit("/", 1)[-1])
        test_secrets.call(transcript, service, "POST", f"/api/todos/{todo_id}/archive", 202)
        wait_for(lambda: todo_id in worker.archived_todo_ids(), "the worker to archive the todo")
    transcript.add_service("web", service)
    transcript.add("worker stdout", worker.stdout_path.read_bytes())
    transcript.add("worker stderr", (tmp_path / "secrets.err").read_bytes())
    test_secrets.assert_nothing_leaked(transcript)
