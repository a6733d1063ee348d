"""Dependencies declared and isolated: the lock alone installs a working app, deptry agrees."""

from __future__ import annotations

import ast
import os
import subprocess
from pathlib import Path

import pytest

from ..environments import service_environment
from ..processes import PROJECT_ROOT, VENV_BIN, WSGI_MODULE

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


def installed_with_uv(venv: Path) -> bool:
    """Whether `make install` built this environment with uv (uv writes its name in pyvenv.cfg)."""
    config = (venv / "pyvenv.cfg").read_text().splitlines()
    return any(line.partition("=")[0].strip() == "uv" for line in config)


def install_lock_offline(fresh: Path, lock: Path) -> subprocess.CompletedProcess[str]:
    """Build the fresh environment and install the lock into it, downloading nothing.

    The same installer as `make install`'s: uv from its cache, or else pip from the wheels
    of the runtime lock that `make install` kept in .venv/wheels.
    """
    install: list[str | Path]
    if installed_with_uv(VENV_BIN.parent):
        uv = VENV_BIN / "uv"
        created = run([uv, "venv", "--quiet", "--python", VENV_BIN / "python", fresh])
        assert created.returncode == 0, created.stderr
        install = [uv, "pip", "install", "--offline", "--python", fresh / "bin" / "python"]
        where = "uv's cache"
    else:
        created = run([VENV_BIN / "python", "-m", "venv", "--without-pip", fresh])
        assert created.returncode == 0, created.stderr
        wheels = VENV_BIN.parent / "wheels"
        install = [VENV_BIN / "python", "-m", "pip", "--python", fresh / "bin" / "python"]
        install += ["install", "--no-compile", "--no-index", "--find-links", wheels]
        where = str(wheels)
    installed = run([*install, "--quiet", "--require-hashes", "-r", lock])
    unavailable = ("network was disabled", "No matching distribution")
    if any(message in installed.stderr for message in unavailable):
        installed.stderr += (
            f"\nThe lock's packages are installed from {where}, which `make install` fills; "
            "if a package is missing there, run `make clean install`."
        )
    return installed


def check_consistent(fresh: Path) -> subprocess.CompletedProcess[str]:
    """Ask the same installer whether every requirement in the fresh environment is met."""
    python = fresh / "bin" / "python"
    if installed_with_uv(VENV_BIN.parent):
        # uv reads the metadata itself, in a few milliseconds; pip starts an interpreter.
        return run([VENV_BIN / "uv", "pip", "check", "--python", python])
    return run([VENV_BIN / "python", "-m", "pip", "--python", python, "check"])


@pytest.mark.processes
def test_a_fresh_environment_from_the_lock_alone_is_consistent_and_imports_the_app(
    tmp_path: Path, database_url: str
) -> None:
    fresh = tmp_path / "fresh"
    installed = install_lock_offline(fresh, PROJECT_ROOT / "requirements.lock")
    assert installed.returncode == 0, installed.stderr

    check = check_consistent(fresh)
    assert check.returncode == 0, check.stdout + check.stderr

    environment = service_environment(database_url, PYTHONPATH=str(PROJECT_ROOT / "src"))
    imported = run(
        [fresh / "bin" / "python", "-c", f"import {WSGI_MODULE}"],
        env=environment,
    )
    assert imported.returncode == 0, imported.stderr


@pytest.mark.processes
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
