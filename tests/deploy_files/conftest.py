"""The fixtures of the deploy-file tests: the session's bakes and validator runs."""

from __future__ import annotations

from typing import Any

import pytest

from .baked_files import ALL, Baked, Bakery
from .validators import Validators, tool


@pytest.fixture(scope="session")
def bakery(cookies_session: Any) -> Bakery:
    """Bakes combinations, each once per session."""
    return Bakery(cookies_session)


@pytest.fixture(scope="session")
def validators(bakery: Bakery) -> Validators:
    """The session's validator runs, shared by every combination."""
    return Validators(bakery)


@pytest.fixture(params=ALL)
def baked(request: pytest.FixtureRequest, bakery: Bakery) -> Baked:
    """One baked combination: every one, unless a test narrows them with `on(...)`."""
    return bakery(request.param)


@pytest.fixture(scope="session")
def hadolint(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """hadolint at its strictest: every rule on, even style and info ones fail.

    An explicit configuration, so that no .hadolint.yaml nearby can switch rules off.
    """
    config = tmp_path_factory.mktemp("hadolint") / "hadolint.yaml"
    config.write_text("ignored: []\nfailure-threshold: style\n")
    return [tool("hadolint"), "--config", str(config), "--no-color", "--failure-threshold", "style"]


@pytest.fixture(scope="module")
def default_bake(bakery: Bakery) -> Baked:
    """The project with the default answers and the worker, for the broken-file tests."""
    return bakery({"worker": "celery"})
