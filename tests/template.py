"""The template under test: where it is, the questions cookiecutter.json asks, the answers
cookiecutter derives from them, and the hooks that receive those answers."""

from __future__ import annotations

import importlib.util
import json
import sys
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
