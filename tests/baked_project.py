"""A baked project's make targets run from the template's tests: their environment, and
what a failure reports."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# The PostgreSQL the baked suites run against unless TEST_DATABASE_URL names another.
DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# Variables that describe the process running the template's tests, not the baked
# project's: left in place they would point the baked tools at the wrong venv,
# add our pytest options to its pytest, or nest its make inside ours.
# The caller's, not a new user's: left out of a baked project's make. PYTHONDONTWRITEBYTECODE
# (set on some CI machines) would make every process of a baked suite compile the project's
# code again, and pytest rewrite its tests again: about a second more for `make test-quick`.
FOREIGN_VARIABLES = (
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONDONTWRITEBYTECODE",
    "MAKEFLAGS",
    "MFLAGS",
    "MAKELEVEL",
)
FOREIGN_PREFIXES = ("PYTEST_",)
# Who commits in a baked project that the tests put under git.
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Template Tests",
    "GIT_AUTHOR_EMAIL": "tests@example.com",
    "GIT_COMMITTER_NAME": "Template Tests",
    "GIT_COMMITTER_EMAIL": "tests@example.com",
}


def tail(text: str, lines: int = 200) -> str:
    """The last lines of a command's output, where its verdict is."""
    return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class BakedProject:
    """A baked project with its own .venv, and the environment its make targets run in."""

    path: Path
    python_version: str
    interpreter: str
    env: dict[str, str]

    def make(self, *arguments: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """Run the project's Makefile, output and errors interleaved as a terminal shows them."""
        return run_make(self.path, *arguments, env=self.env, timeout=timeout)


def make_env(
    *, tools_dir: Path, uv_cache_dir: str, mypy_cache_dir: Path, database_url: str
) -> dict[str, str]:
    """The environment for a baked project's make: our tools first, shared caches, no downloads."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in FOREIGN_VARIABLES and not name.startswith(FOREIGN_PREFIXES)
    }
    env.update(
        PATH=f"{tools_dir}{os.pathsep}{env.get('PATH', '')}",
        UV_PYTHON_DOWNLOADS="never",
        UV_CACHE_DIR=uv_cache_dir,
        MYPY_CACHE_DIR=str(mypy_cache_dir),
        TEST_DATABASE_URL=database_url,
        PYTHONIOENCODING="utf-8",
        # The baked browser test of /docs installs chromium as root, and would skip where it
        # cannot; the template's runs must see the page, so there it fails instead.
        TEST_REQUIRE_BROWSER="1",
        # Likewise the baked metrics tests that scrape with a real Prometheus (observability
        # option): they skip where no prometheus binary is found, unless this is set.
        TEST_REQUIRE_PROMETHEUS="1",
    )
    return env


def own_tools_env(*, mypy_cache_dir: Path, database_url: str) -> dict[str, str]:
    """make_env with the template's own tools (this interpreter's folder) and uv's cache."""
    tools = Path(sys.executable).parent
    uv_cache_dir = subprocess.run(
        [str(tools / "uv"), "cache", "dir"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return make_env(
        tools_dir=tools,
        uv_cache_dir=uv_cache_dir,
        mypy_cache_dir=mypy_cache_dir,
        database_url=database_url,
    )


def run_make(
    project: Path, *arguments: str, env: dict[str, str], timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """Run make in a baked project and keep everything it printed."""
    return subprocess.run(
        ["make", "--no-print-directory", *arguments],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )


def describe_failure(
    project: Path, arguments: tuple[str, ...], result: subprocess.CompletedProcess[str]
) -> str:
    """A failure report that ends with what the baked project printed."""
    command = " ".join(("make", *arguments))
    return (
        f"`{command}` exited {result.returncode} in {project}\n"
        f"--- last 200 lines of its output ---\n{tail(result.stdout)}"
    )
