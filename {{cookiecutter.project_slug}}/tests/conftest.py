"""Fixtures shared by every test: a fresh PostgreSQL database per run, the app and a client."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import settings as hypothesis_settings
from sqlalchemy import URL, Engine, create_engine, make_url, text
from sqlalchemy.exc import OperationalError

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.config import Settings

from .databases import temporary_database
from .environments import SHARED_SERVICE_RELEASE, TEST_SECRET_KEY, service_environment
from .option_tests import option_environment
from .processes import RunningService, web_process

# Each option chosen for this project brings its test settings and fixtures in a plugin of
# its own, tests/<option>/plugin.py, beside its tests.
pytest_plugins = sorted(
    f"tests.{path.parent.name}.plugin" for path in Path(__file__).parent.glob("*/plugin.py")
)

DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

# Examples per generated-input test: the whole suite tries 80; `make test-quick`
# (--hypothesis-profile quick) tries 15, enough to catch a plain regression in a second.
hypothesis_settings.register_profile("suite", max_examples=80)
hypothesis_settings.register_profile("quick", max_examples=15)
hypothesis_settings.load_profile("suite")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--no-processes",
        action="store_true",
        help="run only the tests that start no process (`make test-quick`); "
        "a test that starts one anyway fails, asking for the processes mark",
    )


def pytest_xdist_auto_num_workers() -> int:
    """`-n auto`: two test workers per core. A test that starts the service spends most of its
    time waiting on it, so one worker per core would leave the cores half idle."""
    return 2 * len(os.sched_getaffinity(0))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the tests that start processes when asked; otherwise run them first.

    They are the slow ones: started first, they do not keep one xdist worker busy at the end
    while the others sit idle.
    """
    starts_processes = [item for item in items if item.get_closest_marker("processes")]
    in_process = [item for item in items if not item.get_closest_marker("processes")]
    if config.getoption("no_processes"):
        config.hook.pytest_deselected(items=starts_processes)
        items[:] = in_process
    else:
        items[:] = starts_processes + in_process


@pytest.fixture(scope="session", autouse=True)
def processes_refused_when_left_out(request: pytest.FixtureRequest) -> Iterator[None]:
    """Under --no-processes, starting a process fails the test, so none slips into the set."""
    if not request.config.getoption("no_processes"):
        yield
        return

    def refuse(_process: subprocess.Popen[bytes], args: object, *_: object, **__: object) -> None:
        pytest.fail(
            f"this test started a process ({args!r}) under --no-processes: "
            "mark it @pytest.mark.processes"
        )

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subprocess.Popen, "__init__", refuse)
        yield


@pytest.fixture(scope="session")
def admin_url() -> URL:
    """A URL of the PostgreSQL server the tests may create databases on."""
    url = make_url(os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL))
    url = url.set(drivername="postgresql+psycopg2")
    engine = create_engine(url)
    try:
        with engine.connect():
            pass
    except OperationalError:
        pytest.exit(
            f"PostgreSQL does not answer at {url.render_as_string(hide_password=True)}: "
            "start it, or set TEST_DATABASE_URL to a server where you may create databases.",
            returncode=2,
        )
    finally:
        engine.dispose()
    return url


@pytest.fixture(scope="session")
def database_url(admin_url: URL) -> Iterator[str]:
    """A database of this test run's own, with the schema the migrations make."""
    with temporary_database(admin_url, "run", "head") as url:
        yield url


@pytest.fixture
def empty_database(admin_url: URL) -> Iterator[str]:
    """A database with nothing in it, for tests of what builds the schema."""
    with temporary_database(admin_url, "empty") as url:
        yield url


@pytest.fixture(scope="session")
def shared_service(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    """One web process per test worker, as the Procfile starts it, for the tests that only
    read its answers and its log lines: they need no setting of their own, so each need not
    pay for a process start. Its release id is SHARED_SERVICE_RELEASE."""
    environment = service_environment(
        database_url, WEB_CONCURRENCY="1", RELEASE_ID=SHARED_SERVICE_RELEASE
    )
    with web_process(environment, tmp_path_factory.mktemp("shared-web")) as running:
        yield running


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    """Settings for the app under test, given explicitly rather than by the environment."""
    return Settings(
        database_url=database_url,
        secret_key=TEST_SECRET_KEY,
        release_id="test-release",
        log_format="json",
    )


@pytest.fixture(scope="session", autouse=True)
def option_variables() -> Iterator[None]:
    """The variables the chosen options require, set here for the apps the tests build.

    An option reads its own settings from the environment when it joins the app.
    """
    with pytest.MonkeyPatch.context() as patch:
        for name, value in option_environment().items():
            patch.setenv(name, value)
        yield


@pytest.fixture(scope="session")
def cleaning_engine(database_url: str) -> Iterator[Engine]:
    """One pool for emptying the tables between tests, rather than a new connection each time.

    It checks a connection before use: some tests end every connection to the database.
    """
    engine = create_engine(database_url, pool_pre_ping=True)
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def empty_todos(request: pytest.FixtureRequest) -> None:
    """Every test that uses the database starts with no todos."""
    if "database_url" in request.fixturenames:
        engine: Engine = request.getfixturevalue("cleaning_engine")
        with engine.begin() as connection:
            connection.execute(text("TRUNCATE todos RESTART IDENTITY"))


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    """The application, built from the test settings."""
    application = create_app(settings)
    application.config["TESTING"] = True
    yield application
    application.extensions["database"].dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A client that sends requests to the app without a server."""
    return app.test_client()


@pytest.fixture
def failing_client(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[FlaskClient]:
    """A client of the app with one more route, /boom, that fails as a bug would."""
    monkeypatch.delenv("FLASK_DEBUG", raising=False)
    application = create_app(settings)

    @application.get("/boom")
    def boom() -> str:
        raise RuntimeError("secret internals")

    yield application.test_client()
    application.extensions["database"].dispose()
