"""The environment a test gives the service: every variable it reads, set explicitly."""

from __future__ import annotations

import os

import pytest

from {{ cookiecutter.package_name }}.config import (
    EnvironmentSettings,
    Settings,
    option_settings,
)

from .option_tests import option_environment
from .processes import VENV_BIN

TEST_SECRET_KEY = "test-secret-key-not-for-production"
# The release id of the web process the tests share (the shared_service fixture).
SHARED_SERVICE_RELEASE = "shared-web-release"


def revised(settings: Settings, **changes: object) -> Settings:
    """A validated copy of settings with some values changed."""
    return Settings(**{**settings.model_dump(), **changes})


def start_from_required_variables(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    """Unset every variable the service reads, then set the ones it cannot start without."""
    for name in SERVICE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in required_environment(database_url).items():
        monkeypatch.setenv(name, value)


def variables_of(model: type[EnvironmentSettings]) -> set[str]:
    """The environment variables a settings model reads, <NAME>_FILE ones included."""
    return {name.upper() for name in model.model_fields} | {
        f"{name}_FILE" for name in model.secret_variables
    }


# Every variable the service reads, its chosen options' included; tests set them explicitly,
# never inherit them.
SERVICE_VARIABLES = frozenset(variables_of(Settings).union(*map(variables_of, option_settings())))


def required_environment(database_url: str) -> dict[str, str]:
    """Values for the variables without which no process of the service starts."""
    return {
        "DATABASE_URL": database_url,
        "SECRET_KEY": TEST_SECRET_KEY,
        **option_environment(),
    }


def service_environment(database_url: str, **overrides: str) -> dict[str, str]:
    """The environment a service process gets: this one's, with the service's variables set."""
    environment = {
        name: value for name, value in os.environ.items() if name not in SERVICE_VARIABLES
    }
    environment.update(required_environment(database_url))
    environment.update(
        PATH=f"{VENV_BIN}{os.pathsep}{environment.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
        LOG_FORMAT="json",
        # Stop at once on SIGTERM; the drain period has tests of its own.
        DRAIN_SECONDS="0",
    )
    environment.update(overrides)
    return environment
