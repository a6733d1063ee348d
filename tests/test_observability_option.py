"""The observability option leaves no trace when it is not chosen, and three signals when it is."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from baking import text_files

# Words that only the option's code, settings, docs and dependencies use.
OPTION_WORDS = re.compile(r"opentelemetry|otel|prometheus|sentry", re.IGNORECASE)
# ... and the names of its files and folders.
OPTION_NAMES = re.compile(rf"{OPTION_WORDS.pattern}|observability", re.IGNORECASE)
# The option's own modules, under src/<package>/observability/.
OPTION_MODULES = ("traces.py", "metrics.py", "error_reports.py", "settings.py", "option.py")
# Packages the service imports when the option is chosen, with or without a worker.
RUNTIME_PACKAGES = (
    "opentelemetry-api",
    "opentelemetry-sdk",
    "opentelemetry-exporter-otlp-proto-http",
    "opentelemetry-semantic-conventions",
    "prometheus-client",
    "sentry-sdk",
)
# Instrumentations that only a service with a Celery worker has use for.
WORKER_PACKAGES = (
    "opentelemetry-instrumentation",
    "opentelemetry-instrumentation-celery",
    "opentelemetry-instrumentation-redis",
)
LOCKS = ("requirements.lock", "requirements-dev.lock")
# A requirement's first line in a lock: `name==version`, maybe with extras and a marker.
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==\S+")


def bake(cookies: Any, **answers: str) -> Path:
    """Bake with these answers; fail on any error."""
    result = cookies.bake(extra_context=answers)
    assert result.exception is None, result.exception
    return Path(result.project_path)


def lock_entries(lock: Path) -> dict[str, str]:
    """Each requirement of a lock, by its normalized name, with its lines (hashes, notes)."""
    entries: dict[str, str] = {}
    name = None
    for line in lock.read_text(encoding="utf-8").splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            match = PIN.match(line)
            assert match is not None, f"{lock.name}: not a pinned requirement: {line!r}"
            name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
            entries[name] = ""
        if name is not None:
            entries[name] += line + "\n"
    return entries


@pytest.mark.parametrize("worker", ["none", "celery"])
def test_without_observability_nothing_names_its_signals(cookies: Any, worker: str) -> None:
    project = bake(cookies, worker=worker, observability="none")
    mentions = [
        str(path.relative_to(project))
        for path, text in text_files(project)
        if OPTION_WORDS.search(text)
    ]
    assert mentions == []
    named = [str(path.relative_to(project)) for path in project.rglob("*")]
    assert [name for name in named if OPTION_NAMES.search(name)] == []
    assert not (project / "src" / "my_service" / "observability").exists()
    assert not (project / "tests" / "observability").exists()


def test_with_opentelemetry_the_modules_and_their_packages_are_there(cookies: Any) -> None:
    project = bake(cookies, observability="opentelemetry")
    package = project / "src" / "my_service" / "observability"
    assert [module for module in OPTION_MODULES if not (package / module).is_file()] == []
    pyproject = (project / "pyproject.toml").read_text(encoding="utf-8")
    assert [name for name in RUNTIME_PACKAGES if f'"{name}' not in pyproject] == []
    for lock in LOCKS:
        entries = lock_entries(project / lock)
        assert [name for name in RUNTIME_PACKAGES if name not in entries] == [], lock
    # The tests decode what their OTLP receiver gets with the protobuf classes.
    assert '"opentelemetry-proto' in pyproject.split("[dependency-groups]", 1)[1]
    assert "opentelemetry-proto" in lock_entries(project / "requirements-dev.lock")
    assert not (project / "locks").exists()


@pytest.mark.parametrize("worker", ["none", "celery"])
def test_with_opentelemetry_every_locked_package_is_pinned_with_hashes(
    cookies: Any, worker: str
) -> None:
    project = bake(cookies, worker=worker, observability="opentelemetry")
    for lock in LOCKS:
        entries = lock_entries(project / lock)
        assert "opentelemetry-sdk" in entries, lock
        unhashed = [name for name, lines in entries.items() if "--hash=sha256:" not in lines]
        assert unhashed == [], lock


@pytest.mark.parametrize("worker", ["none", "celery"])
def test_celery_and_redis_are_traced_only_when_there_is_a_worker(cookies: Any, worker: str) -> None:
    project = bake(cookies, worker=worker, observability="opentelemetry")
    pyproject = (project / "pyproject.toml").read_text(encoding="utf-8")
    expected = list(WORKER_PACKAGES) if worker == "celery" else []
    # A name, then its extras or its range: the instrumentation is not its celery plug-in.
    required = [name for name in WORKER_PACKAGES if re.search(rf'"{name}[\[<>=]', pyproject)]
    assert required == expected
    for lock in LOCKS:
        entries = lock_entries(project / lock)
        assert [name for name in WORKER_PACKAGES if name in entries] == expected, lock
        assert ("celery" in entries) is (worker == "celery"), lock
