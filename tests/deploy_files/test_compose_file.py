"""docker-compose.yml: the compose-spec schema, the Procfile's processes and their services.

The compose stack is also started on a real engine, in tests/test_compose_stack.py.
"""

from __future__ import annotations

import ast
import re
import shlex

from .baked_files import TMPFS, WORKER_STOP_SECONDS, Baked, compose_seconds
from .validators import Validators

# A compose port mapping: [ip:][host port or range:]container port.
PORT_MAPPING = re.compile(r"(?:[\d.]+:)?(?:(?P<host>[^:]+):)?(?P<container>\$\{[^}]*\}|\d+)")


def test_compose_file_matches_the_compose_spec(baked: Baked, validators: Validators) -> None:
    validators.schema("vendor.compose-spec", baked, "docker-compose.yml")


def test_compose_runs_the_procfile_with_its_backing_services(baked: Baked) -> None:
    services = baked.compose["services"]
    expected = {"db", "migrate", "web"} | ({"redis", "worker"} if baked.celery else set())
    if baked.observability:
        expected.add("prometheus")  # behind a profile: see test_observability_files.py
    assert set(services) == expected
    assert [name for name, service in services.items() if "container_name" in service] == []
    assert services["migrate"]["command"] == baked.procfile["release"]
    assert services["web"]["command"] == baked.procfile["web"]
    if baked.celery:
        assert services["worker"]["command"] == baked.procfile["worker"]
    app_services = ["migrate", "web", *(["worker"] if baked.celery else [])]
    for name in app_services:
        service = services[name]
        assert service["read_only"] is True
        assert service["tmpfs"] == [TMPFS]
        assert service["depends_on"]["db"] == {"condition": "service_healthy"}


def test_compose_backing_services_are_healthchecked(baked: Baked) -> None:
    services = baked.compose["services"]
    db = services["db"]
    assert db["image"] == f"postgres:{baked.answers['postgres_version']}"
    assert db["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    volume, _, mount = db["volumes"][0].partition(":")
    assert volume in baked.compose["volumes"]
    assert mount == "/var/lib/postgresql/data"
    if baked.celery:
        assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_compose_reads_settings_from_env_and_points_at_its_services(baked: Baked) -> None:
    services = baked.compose["services"]
    environment = services["web"]["environment"]
    assert re.fullmatch(r"\$\{SECRET_KEY:\?[^}]*make \.env[^}]*\}", environment["SECRET_KEY"])
    assert "@db:5432/" in environment["DATABASE_URL"]
    if baked.celery:
        assert environment["REDIS_URL"].startswith("redis://redis:6379/")
    assert services["web"]["env_file"] == [{"path": ".env", "required": False}]
    port = environment["PORT"]
    assert port == "${PORT:-8000}"
    assert baked.env_example["PORT"] == "8000"
    # The port is published with no proxy in front: the slow-client deadlines are set here,
    # defaulting to .env.example's values.
    for deadline in ("WEB_HEADER_TIMEOUT", "WEB_BODY_TIMEOUT"):
        assert environment[deadline] == f"${{{deadline}:-{baked.env_example[deadline]}}}"
    # No fixed host port per replica: a range (or none), so --scale web=3 can bind.
    for mapping in services["web"]["ports"]:
        parsed = PORT_MAPPING.fullmatch(str(mapping))
        assert parsed, mapping
        assert parsed["container"] == port
        assert parsed["host"] is None or re.fullmatch(r"\d+-\d+", parsed["host"]), mapping


def test_compose_processes_start_only_after_the_release_completed(baked: Baked) -> None:
    services = baked.compose["services"]
    assert services["migrate"]["command"] == baked.procfile["release"]
    assert services["migrate"]["restart"] == "no", "the release runs once per up"
    for name in ["web", *(["worker"] if baked.celery else [])]:
        condition = services[name]["depends_on"].get("migrate")
        assert condition == {"condition": "service_completed_successfully"}, name


def test_compose_web_is_healthy_only_while_readyz_answers(baked: Baked) -> None:
    kind, *command = baked.compose["services"]["web"]["healthcheck"]["test"]
    assert kind == "CMD"
    assert command[:2] == ["python", "-c"]
    code = command[2]
    ast.parse(code)
    assert "os.environ.get('PORT', '8000')" in code
    assert "/readyz'" in code
    assert "/readyz" in baked.app_routes


def test_compose_web_stop_grace_period_covers_the_drain_and_the_graceful_timeout(
    baked: Baked,
) -> None:
    grace = compose_seconds(baked.compose["services"]["web"]["stop_grace_period"])
    # With the .env that `make .env` writes from .env.example, and with none (the defaults).
    for settings in (baked.env_example, {}):
        stop_seconds = baked.stop_seconds(settings)
        assert grace > stop_seconds, (
            f"stop_grace_period {grace}s must outlast DRAIN_SECONDS + GRACEFUL_TIMEOUT "
            f"({stop_seconds}), or docker kills requests in flight"
        )


def test_compose_worker_stop_grace_period_outlasts_the_task_time_limit(baked: Baked) -> None:
    if not baked.celery:
        assert "worker" not in baked.compose["services"]
        return
    soft_limit = int(baked.env_example["TASK_SOFT_TIME_LIMIT"])
    time_limit = int(baked.env_example["TASK_TIME_LIMIT"])
    assert soft_limit < time_limit
    grace = compose_seconds(baked.compose["services"]["worker"]["stop_grace_period"])
    assert grace > time_limit + WORKER_STOP_SECONDS


def test_compose_worker_is_checked_by_asking_the_worker_not_the_web_port(baked: Baked) -> None:
    if not baked.celery:
        assert "worker" not in baked.compose["services"]
        return
    check = baked.compose["services"]["worker"]["healthcheck"]
    kind, command = check["test"]
    assert kind == "CMD-SHELL"
    words = shlex.split(command)
    assert words[: len(baked.procfile["worker"][:3])] == baked.procfile["worker"][:3]
    assert words[3:5] == ["inspect", "ping"]
    assert "/healthz" not in command
