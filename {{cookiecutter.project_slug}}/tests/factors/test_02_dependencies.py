"""Dependencies declared and isolated: the lock alone installs a working app, deptry agrees."""

from __future__ import annotations

import ast
import os
import subprocess
from pathlib import Path

import pytest

from ..support import PROJECT_ROOT, VENV_BIN, WSGI_MODULE, service_environment

SERVICE_CODE = [
    *(PROJECT_ROOT / "src").rglob("*.py"),
    PROJECT_ROOT / "gunicorn.conf.py",
    *(PROJECT_ROOT / "migrations").rglob("*.py"),
]
# Modules through which code could run a program the lock does not provide.
SHELL_OUT_MODULES = {"subprocess", "pty", "shlex"}
SHELL_OUT_CALLS = {"system", "popen", "execv", "execvp", "spawnv", "spawnl", "startfile"}


def run(
    command: list[str | Path], cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion, capturing its output."""
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=300
    )


def test_a_fresh_environment_from_the_lock_alone_is_consistent_and_imports_the_app(
    tmp_path: Path, database_url: str
) -> None:
    uv = VENV_BIN / "uv"
    venv = tmp_path / "fresh"
    created = run([uv, "venv", "--seed", "--quiet", "--python", VENV_BIN / "python", venv])
    assert created.returncode == 0, created.stderr
    # --offline: the packages come from the cache `make install` filled; nothing downloads.
    installed = run(
        [
            uv,
            "pip",
            "install",
            "--offline",
            "--quiet",
            "--python",
            venv / "bin" / "python",
            "--require-hashes",
            "-r",
            PROJECT_ROOT / "requirements.lock",
        ]
    )
    if installed.returncode != 0 and "offline" in installed.stderr.lower():
        pytest.skip(
            f"the uv cache lacks a locked package; run `make install` first: {installed.stderr}"
        )
    assert installed.returncode == 0, installed.stderr

    check = run([venv / "bin" / "python", "-m", "pip", "check"])
    assert check.returncode == 0, check.stdout + check.stderr

    environment = service_environment(database_url, PYTHONPATH=str(PROJECT_ROOT / "src"))
    imported = run(
        [venv / "bin" / "python", "-c", f"import {WSGI_MODULE}"],
        env=environment,
    )
    assert imported.returncode == 0, imported.stderr


def test_every_imported_package_is_declared_and_every_declared_one_used() -> None:
    result = run([VENV_BIN / "deptry", "."], cwd=PROJECT_ROOT, env={**os.environ, "NO_COLOR": "1"})
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", SERVICE_CODE, ids=lambda path: str(path.relative_to(PROJECT_ROOT)))
def test_the_service_never_shells_out_to_a_system_tool(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = {alias.name.split(".")[0] for alias in node.names}
            if isinstance(node, ast.ImportFrom) and node.module:
                names = {node.module.split(".")[0]}
            assert not names & SHELL_OUT_MODULES, f"{path.name}:{node.lineno} imports {names}"
        if isinstance(node, ast.Attribute) and node.attr in SHELL_OUT_CALLS:
            assert not (isinstance(node.value, ast.Name) and node.value.id == "os"), (
                f"{path.name}:{node.lineno} calls os.{node.attr}"
            )
