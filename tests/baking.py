"""Baking the template with the cookiecutter command line, and reading what a bake wrote."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path


def write_cookiecutter_config(directory: Path) -> Path:
    """A cookiecutter user config that keeps replay files out of the home directory."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "cookiecutter-config.yaml"
    config.write_text(
        f"cookiecutters_dir: {json.dumps(str(directory / 'cookiecutters'))}\n"
        f"replay_dir: {json.dumps(str(directory / 'replay'))}\n",
        encoding="utf-8",
    )
    return config


def run_cookiecutter(
    *arguments: str, output_dir: Path, config_file: Path, no_input: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the cookiecutter command line on the template, as a user would."""
    command = [
        sys.executable,
        "-m",
        "cookiecutter",
        *(["--no-input"] if no_input else []),
        "--config-file",
        str(config_file),
        "--output-dir",
        str(output_dir),
        *arguments,
    ]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )


def read_procfile(project: Path) -> dict[str, list[str]]:
    """A baked Procfile: process type to its command, split as a shell would."""
    commands = {}
    for line in (project / "Procfile").read_text(encoding="utf-8").splitlines():
        if line.strip():
            name, _, command = line.partition(":")
            commands[name.strip()] = shlex.split(command)
    return commands


def text_files(root: Path) -> list[tuple[Path, str]]:
    """Every file under root that decodes as UTF-8 text, with its contents."""
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or ".venv" in path.relative_to(root).parts:
            continue
        data = path.read_bytes()
        if b"\0" in data:
            continue
        try:
            found.append((path, data.decode("utf-8")))
        except UnicodeDecodeError:
            continue
    return found


def tree_snapshot(root: Path) -> dict[str, bytes]:
    """Every file and directory under root, with the contents of the files."""
    return {
        str(path.relative_to(root)): path.read_bytes() if path.is_file() else b"<dir>"
        for path in sorted(root.rglob("*"))
    }
