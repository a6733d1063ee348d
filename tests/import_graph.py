"""The import graph of a folder of Python source, read by AST: nothing is imported or run.

Every `import` and `from ... import` counts, wherever it is in a module (inside a function,
under `if TYPE_CHECKING`): a circle through a deferred import is a circle in the design all
the same. `from package import name` counts as an import of package.name when that is a
module of the folder, else of the package itself (its __init__).
"""

from __future__ import annotations

import ast
from pathlib import Path


def module_names(root: Path, prefix: str) -> dict[str, Path]:
    """Each module under root by its dotted name, prefixed (a package's by its own name)."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(filter(None, [prefix, *parts]))] = path
    return names


def deepest_known(name: str, known: dict[str, Path]) -> str | None:
    """The longest dotted prefix of name that is a module of the folder."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of the folder that one module imports."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parents = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(filter(None, [*parents, node.module or ""]))
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            name = deepest_known(target, known)
            if name is not None and name != module:
                found.add(name)
    return found


def import_graph(root: Path, prefix: str = "") -> dict[str, set[str]]:
    """Each module of the folder, with the modules of the folder it imports."""
    known = module_names(root, prefix)
    return {module: imports_of(module, path, known) for module, path in known.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each circle of imports, as the modules around it, first one repeated at the end."""
    found: list[list[str]] = []
    seen_groups: list[set[str]] = []

    def walk(path: list[str]) -> None:
        for target in sorted(graph.get(path[-1], ())):
            if target == path[0]:
                group = set(path)
                if group not in seen_groups:
                    seen_groups.append(group)
                    found.append([*path, target])
            elif target not in path and target > path[0]:
                walk([*path, target])

    for start in sorted(graph):
        walk([start])
    return found


def describe(found: list[list[str]]) -> str:
    """The circles, one per line: a -> b -> a."""
    return "\n".join(" -> ".join(circle) for circle in found)
