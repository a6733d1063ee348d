"""Each factor test turns red when its factor is broken on purpose in a baked project.

One default project is baked and installed; for each factor a copy of it is broken in
one place and only that factor's test file is run, with the copy's source first on
PYTHONPATH so the installed environment serves the broken code.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness import (
    BakedProject,
    describe_failure,
    find_interpreter,
    own_tools_env,
    tail,
)

pytestmark = pytest.mark.baked

PACKAGE = "my_service"


def replace(path: Path, old: str, new: str) -> None:
    """Replace text that must be there; a breakage that does not apply is a test bug."""
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def append(path: Path, text: str) -> None:
    """Add text at the end of a file."""
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)


@dataclass(frozen=True)
class Breakage:
    """One deliberate violation of a factor, and the factor test file that must catch it."""

    factor_file: str
    how: str
    apply: Callable[[Path], None]


def src(project: Path, module: str) -> Path:
    """A module of the baked package."""
    return project / "src" / PACKAGE / module


BREAKAGES = [
    Breakage(
        "test_01_codebase.py",
        "the code is git-ignored, so a clone lacks it",
        lambda project: append(project / ".gitignore", "src/\n"),
    ),
    Breakage(
        "test_02_dependencies.py",
        "the code imports a package it does not declare",
        lambda project: append(src(project, "errors.py"), "\nimport markupsafe  # noqa\n"),
    ),
    Breakage(
        "test_03_config.py",
        "SECRET_KEY gets a default, so a missing one no longer stops the process",
        lambda project: replace(
            src(project, "config.py"),
            'secret_key: SecretStr = Field(description="Signs sessions; at least 16 characters")',
            'secret_key: SecretStr = SecretStr("a-default-secret-in-the-code")',
        ),
    ),
    Breakage(
        "test_04_backing_services.py",
        "the database URL is written into the code",
        lambda project: replace(
            src(project, "db.py"),
            "settings.database_url,",
            '"postgresql+psycopg2://postgres@127.0.0.1:5432/postgres",',
        ),
    ),
    Breakage(
        "test_05_build_release_run.py",
        "/version reports a release fixed in the code",
        lambda project: replace(
            src(project, "health.py"), "release=settings.release_id", 'release="dev"'
        ),
    ),
    Breakage(
        "test_06_processes.py",
        "a process keeps todos in memory between requests",
        lambda project: replace(
            src(project, "todos.py"),
            '    return TodoOut.model_validate(row).model_dump(mode="json")',
            "    return MEMORY.setdefault("
            'todo_id, TodoOut.model_validate(row).model_dump(mode="json"))'
            "\n\n\nMEMORY: dict[int, dict[str, Any]] = {}",
        ),
    ),
    Breakage(
        "test_07_port_binding.py",
        "gunicorn is no longer a declared dependency",
        lambda project: replace(project / "pyproject.toml", '    "gunicorn>=23,<28",\n', ""),
    ),
    Breakage(
        "test_08_concurrency.py",
        "the number of workers is fixed in the code",
        lambda project: replace(
            project / "gunicorn.conf.py", "workers = settings.web_concurrency", "workers = 1"
        ),
    ),
    Breakage(
        "test_09_disposability.py",
        "workers are killed at once on SIGTERM instead of finishing their requests",
        lambda project: replace(
            project / "gunicorn.conf.py",
            "graceful_timeout = settings.graceful_timeout",
            "graceful_timeout = 0",
        ),
    ),
    Breakage(
        "test_10_dev_prod_parity.py",
        "another database engine is suggested for development",
        lambda project: append(project / "README.md", "\nFor quick local runs, use SQLite.\n"),
    ),
    Breakage(
        "test_11_logs.py",
        "logs also go to a file",
        lambda project: replace(
            src(project, "logging.py"),
            "    root.addHandler(handler)\n",
            "    root.addHandler(handler)\n"
            '    root.addHandler(logging.FileHandler("service.log"))\n',
        ),
    ),
    Breakage(
        "test_12_admin_processes.py",
        "the web process migrates the database as it starts",
        lambda project: replace(
            src(project, "__init__.py"),
            "    configure_logging(settings)\n",
            "    configure_logging(settings)\n"
            "    from alembic import command\n"
            "    from alembic.config import Config\n\n"
            '    command.upgrade(Config("alembic.ini"), "head")\n',
        ),
    ),
]


@pytest.fixture(scope="module")
def installed_project(
    cookies_session: Any, tmp_path_factory: pytest.TempPathFactory, test_database_url: str
) -> BakedProject:
    """The default project, baked once and installed with its own `make install`."""
    interpreter = find_interpreter("3.12")
    if interpreter is None:
        pytest.skip("no working Python 3.12 to install the default project with")
    result = cookies_session.bake(extra_context={"project_name": "My Service"})
    assert result.exception is None, result.exception
    env = own_tools_env(
        mypy_cache_dir=tmp_path_factory.mktemp("mypy-cache"), database_url=test_database_url
    )
    project = BakedProject(Path(result.project_path), "3.12", interpreter, env)
    install = project.make("install", f"PYTHON={interpreter}")
    if install.returncode != 0:
        pytest.fail(describe_failure(project.path, ("install",), install), pytrace=False)
    return project


def run_factor(
    project: Path, venv: Path, factor_file: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run one factor test file of project with the installed environment."""
    return subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pytest",
            "-q",
            "-x",
            "-p",
            "no:cacheprovider",
            f"tests/factors/{factor_file}",
        ],
        cwd=project,
        env={**env, "PYTHONPATH": str(project / "src")},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda breakage: breakage.factor_file[5:-3])
def test_breaking_the_factor_turns_its_test_red(
    installed_project: BakedProject, breakage: Breakage, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(
        installed_project.path, broken, ignore=shutil.ignore_patterns(".venv", "*_cache")
    )
    breakage.apply(broken)
    venv = installed_project.path / ".venv"
    result = run_factor(broken, venv, breakage.factor_file, installed_project.env)
    assert result.returncode == 1, (
        f"{breakage.factor_file} still passes when {breakage.how}:\n{tail(result.stdout, 40)}"
    )
    assert " failed" in result.stdout, tail(result.stdout + result.stderr, 40)


def test_the_unbroken_project_passes_every_factor(
    installed_project: BakedProject, tmp_path: Path
) -> None:
    copy = tmp_path / "intact"
    shutil.copytree(installed_project.path, copy, ignore=shutil.ignore_patterns(".venv", "*_cache"))
    venv = installed_project.path / ".venv"
    result = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/factors",
        ],
        cwd=copy,
        env={**installed_project.env, "PYTHONPATH": str(copy / "src")},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, tail(result.stdout + result.stderr, 80)
