"""What the template's tests share: where the template is, its hooks, and how to drive a bake."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from cookiecutter.environment import StrictEnvironment
from cookiecutter.generate import generate_context
from cookiecutter.prompt import prompt_for_config

TEMPLATE_DIR = Path(__file__).resolve().parent.parent
HOOKS_DIR = TEMPLATE_DIR / "hooks"
COOKIECUTTER_JSON: dict[str, Any] = json.loads(
    (TEMPLATE_DIR / "cookiecutter.json").read_text(encoding="utf-8")
)
# The questions answered by picking from a list; the first item is the default.
CHOICE_QUESTIONS = [
    name
    for name, value in COOKIECUTTER_JSON.items()
    if not name.startswith("_") and isinstance(value, list)
]
DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

# Variables that describe the process running the template's tests, not the baked
# project's: left in place they would point the baked tools at the wrong venv,
# add our pytest options to its pytest, or nest its make inside ours.
FOREIGN_VARIABLES = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")
FOREIGN_PREFIXES = ("PYTEST_",)


def choices(name: str) -> tuple[str, ...]:
    """The choices cookiecutter.json offers for a variable, default first."""
    return tuple(COOKIECUTTER_JSON[name])


def answers(**overrides: str) -> dict[str, Any]:
    """The answers cookiecutter derives without prompting, as the hooks receive them."""
    context = generate_context(
        context_file=str(TEMPLATE_DIR / "cookiecutter.json"), extra_context=overrides
    )
    return dict(prompt_for_config(context, no_input=True))


def load_hook(name: str) -> ModuleType:
    """Import a hook from its unrendered file; only its `__main__` block needs Jinja."""
    path = HOOKS_DIR / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"template_hooks_{name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the hook {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def render_hook(name: str, answers: dict[str, Any]) -> str:
    """Render a hook the way cookiecutter does before running it."""
    source = (HOOKS_DIR / f"{name}.py").read_text(encoding="utf-8")
    context = {"cookiecutter": answers}
    return StrictEnvironment(context=context).from_string(source).render(**context)


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
