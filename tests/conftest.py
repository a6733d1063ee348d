"""Fixtures for the template's tests: a reachable PostgreSQL and a private cookiecutter config."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from baked_project import (
    DEFAULT_TEST_DATABASE_URL,
    GIT_IDENTITY,
    BakedProject,
    describe_failure,
    own_tools_env,
)
from baking import write_cookiecutter_config
from containers import REQUIRE_VARIABLE, Engine, NoEngineError, container_engine
from interpreters import find_interpreter

# Prints where the run's time went, by test file, against tests/suite-times.json.
pytest_plugins = ["suite_times"]


def _without_password(url: str) -> str:
    """The URL as it may be printed: any password replaced by stars."""
    scheme, separator, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not separator or not at or ":" not in credentials:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


@pytest.fixture(scope="session")
def test_database_url() -> str:
    """The PostgreSQL the baked suites run against; stop the whole run if it does not answer."""
    url = os.environ.get("TEST_DATABASE_URL") or DEFAULT_TEST_DATABASE_URL
    try:
        psycopg2.connect(url, connect_timeout=5).close()
    except psycopg2.Error as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        pytest.exit(
            f"PostgreSQL does not answer at {_without_password(url)} ({reason}): start "
            "PostgreSQL on 127.0.0.1:5432 or set TEST_DATABASE_URL to a server you can use.",
            returncode=1,
        )
    return url


@pytest.fixture(scope="session")
def cookiecutter_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cookiecutter config whose replay files stay in the test's temporary directory."""
    return write_cookiecutter_config(tmp_path_factory.mktemp("cookiecutter-user"))


@pytest.fixture(scope="session")
def installed_project(
    cookies_session: Any, tmp_path_factory: pytest.TempPathFactory, test_database_url: str
) -> BakedProject:
    """The default project, baked once, committed as a student would, and installed with uv.

    Tests that change it work on copies (its .venv shared, the copy's src/ first on
    PYTHONPATH): the factor exercises and the rolling release.
    """
    interpreter = find_interpreter("3.12")
    if interpreter is None:
        pytest.skip("no working Python 3.12 to install the default project with")
    result = cookies_session.bake(extra_context={"project_name": "My Service"})
    assert result.exception is None, result.exception
    env = own_tools_env(
        mypy_cache_dir=tmp_path_factory.mktemp("mypy-cache"), database_url=test_database_url
    )
    project = BakedProject(Path(result.project_path), "3.12", interpreter, env)
    for command in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "Bake"]):
        committed = subprocess.run(
            command,
            cwd=project.path,
            env={**env, **GIT_IDENTITY},
            capture_output=True,
            text=True,
            check=False,
        )
        assert committed.returncode == 0, committed.stdout + committed.stderr
    install = project.make("install", f"PYTHON={interpreter}")
    if install.returncode != 0:
        pytest.fail(describe_failure(project.path, ("install",), install), pytrace=False)
    return project


def no_engine(reason: NoEngineError) -> None:
    """Skip for want of a container engine, saying why; fail where one is required (CI)."""
    message = f"no container engine: {reason}"
    if os.environ.get(REQUIRE_VARIABLE):
        pytest.fail(f"{message} ({REQUIRE_VARIABLE} is set, so this may not skip)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """A Docker engine for the session: one that answers, or a private dockerd."""
    try:
        with container_engine() as found:
            yield found
    except NoEngineError as reason:
        no_engine(reason)


# CI gives each baked variant a job of its own; unset, every variant runs.
BAKED_VARIANTS_VARIABLE = "TEMPLATE_BAKED_VARIANTS"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the baked variants TEMPLATE_BAKED_VARIANTS does not name, when it names any."""
    wanted = {name.strip() for name in os.environ.get(BAKED_VARIANTS_VARIABLE, "").split(",")}
    wanted.discard("")
    if not wanted:
        return
    variants = {item: item.get_closest_marker("baked_variant") for item in items}
    known = {mark.args[0] for mark in variants.values() if mark is not None}
    if known and not wanted <= known:
        unknown = ", ".join(sorted(wanted - known))
        raise pytest.UsageError(
            f"{BAKED_VARIANTS_VARIABLE} names {unknown}, which no baked test has; "
            f"name some of: {', '.join(sorted(known))}"
        )
    dropped = [item for item, mark in variants.items() if mark and mark.args[0] not in wanted]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]
