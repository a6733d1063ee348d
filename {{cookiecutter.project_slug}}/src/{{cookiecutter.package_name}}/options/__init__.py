"""The options chosen when this service was generated: one module each, in this folder.

Importing an option's module declares what it adds to the data model and its settings (a
model of its own, read by config.py); its `init_app(app)` wires it into the web app. So
taking an option out is deleting its module (with its migration, tests and locked
packages): no other module names it.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def chosen_options() -> list[ModuleType]:
    """Import every option module of this folder, in name order, and return them."""
    names = sorted(module.name for module in pkgutil.iter_modules(__path__))
    return [importlib.import_module(f"{__name__}.{name}") for name in names]
