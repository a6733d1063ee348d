"""Finding a Python X.Y to bake for: on PATH, or among pyenv's versions."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path


def pyenv_root() -> Path | None:
    """Where pyenv keeps its interpreters, asking pyenv itself first."""
    if shutil.which("pyenv"):
        answer = subprocess.run(
            ["pyenv", "root"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        if answer.returncode == 0 and answer.stdout.strip():
            return Path(answer.stdout.strip())
    if os.environ.get("PYENV_ROOT"):
        return Path(os.environ["PYENV_ROOT"])
    default = Path.home() / ".pyenv"
    return default if default.is_dir() else None


def _version_key(path: Path) -> tuple[int, ...]:
    """Sort pyenv version directories by their numeric parts, newest last."""
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.parent.name))


def _runs_as(interpreter: str, version: str) -> bool:
    """Whether the interpreter starts and is the wanted X.Y (pyenv shims may not)."""
    try:
        answer = subprocess.run(
            [interpreter, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except OSError:
        return False
    return answer.returncode == 0 and answer.stdout.strip() == version


def interpreter_candidates(version: str) -> list[str]:
    """Where a Python X.Y may be: on PATH first, then pyenv's versions, newest first."""
    candidates = []
    on_path = shutil.which(f"python{version}")
    if on_path:
        candidates.append(on_path)
    root = pyenv_root()
    if root is not None:
        found = list((root / "versions").glob(f"{version}.*/bin/python"))
        found += list((root / "versions").glob(f"{version}/bin/python"))
        candidates += [str(path) for path in sorted(found, key=_version_key, reverse=True)]
    return candidates


def find_interpreter(version: str) -> str | None:
    """The first working Python X.Y interpreter, or None."""
    for candidate in interpreter_candidates(version):
        if _runs_as(candidate, version):
            return candidate
    return None
