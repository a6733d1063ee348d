"""The options chosen when this service was generated, and the one way the core reaches them.

Each option is a package of this service (such as task_queue/ or observability/), deleted
whole when the option is not chosen. The core names none of them: it asks this module for
what the chosen ones answer to a hook, found by name in each option's `option.py`, and,
where two options meet, in a module named `<other option>_option.py` of the option that adds
the behaviour. A hook an option does not define is skipped. The hooks:

- `SETTINGS`: the option's settings model; config.py reads and checks it with the core's.
- `todo_columns()`: the columns the option adds to a todo, by name (models.py).
- `init_app(app)`: wire the option into the web app (create_app).
- `web_server_ready()`: in the web server's master, once it listens.
- `web_worker_exited(pid)`: in the web server's master, once a worker has exited.
- `web_worker_stopping()`: in a web worker that has stopped serving, before it exits.
- `init_task_publisher(app)`, `init_task_worker(app)`, `init_task_worker_process(app)`:
  called by the task queue option in a process that enqueues tasks, in the worker's main
  process, and in each process of its pool.

An option imports the core, never the reverse, and never another option; importing an
option's modules changes nothing: only calling its hooks does.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

SERVICE_PACKAGE = __name__.rpartition(".")[0]
SERVICE_FOLDER = Path(__file__).parent
OPTION_MODULE = "option"


@functools.cache
def option_modules() -> tuple[ModuleType, ...]:
    """The hook modules of every option present, in the order of their packages' names."""
    found = []
    packages = sorted(
        info.name for info in pkgutil.iter_modules([str(SERVICE_FOLDER)]) if info.ispkg
    )
    for package in packages:
        modules = sorted(
            info.name for info in pkgutil.iter_modules([str(SERVICE_FOLDER / package)])
        )
        for name in modules:
            if name == OPTION_MODULE or name.endswith(f"_{OPTION_MODULE}"):
                found.append(importlib.import_module(f"{SERVICE_PACKAGE}.{package}.{name}"))
    return tuple(found)


def hook(name: str) -> Iterator[Any]:
    """What each chosen option defines under this hook's name."""
    for module in option_modules():
        if hasattr(module, name):
            yield getattr(module, name)


def call(name: str, *args: Any) -> None:
    """Call this hook of every chosen option that defines it."""
    for function in hook(name):
        function(*args)
