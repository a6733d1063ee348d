"""The import graph of a folder of Python source, read from the source (nothing is executed),
and the circles its arrows close.

Every `import` and `from ... import` counts wherever it stands, inside a function or under
`if TYPE_CHECKING` too: a circle through a deferred import is still a circle in the design.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ImportGraph:
    """Modules by dotted name, the modules each one imports, and the circles those close.

    Each circle is a closed path, its first module repeated at the end and the first in name
    order first; every module of a tangle (a strongly connected part of the graph) is on one.
    """

    modules: frozenset[str]
    arrows: Mapping[str, frozenset[str]]
    circles: tuple[tuple[str, ...], ...]


def read_package(package_dir: Path) -> ImportGraph:
    """The graph of a package, as its parent folder on sys.path would import it."""
    return _read(package_dir.parent, sorted(package_dir.rglob("*.py")))


def read_folder(folder: Path) -> ImportGraph:
    """The graph of a folder that is itself on sys.path (as pytest puts tests/ there)."""
    return _read(folder, sorted(folder.rglob("*.py")))


def _read(path_entry: Path, files: list[Path]) -> ImportGraph:
    """Name every file as imported from path_entry, then follow each one's imports."""
    names = {path: _module_name(path_entry, path) for path in files}
    modules = frozenset(names.values())
    arrows = {
        name: frozenset(_imports_of(path, name, modules) - {name}) for path, name in names.items()
    }
    return ImportGraph(modules, arrows, _circles(arrows))


def _module_name(path_entry: Path, path: Path) -> str:
    """pkg/sub/mod.py is pkg.sub.mod; pkg/__init__.py is pkg."""
    parts = list(path.relative_to(path_entry).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports_of(path: Path, name: str, modules: frozenset[str]) -> set[str]:
    """The modules of the graph that the file imports; the rest are another project's."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(_deepest_module(alias.name, modules) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute_source(node, package)
            for alias in node.names:
                # `from pkg import name` imports the module pkg.name when there is one,
                # else a name that pkg's __init__ defines.
                submodule = f"{source}.{alias.name}"
                found.add(submodule if submodule in modules else _deepest_module(source, modules))
    found.discard("")
    return found


def _absolute_source(node: ast.ImportFrom, package: str) -> str:
    """What `from X import` names, with a relative X resolved against the importing package."""
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = parts[: len(parts) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def _deepest_module(dotted: str, modules: frozenset[str]) -> str:
    """The longest prefix of a dotted name that is a module of the graph, or ''."""
    while dotted and dotted not in modules:
        dotted = dotted.rpartition(".")[0]
    return dotted


def _circles(arrows: Mapping[str, frozenset[str]]) -> tuple[tuple[str, ...], ...]:
    """Each module's shortest way back to itself; a circle found from several of its modules
    is told once."""
    found = set()
    for module in sorted(arrows):
        way_back = _shortest_way_back(module, arrows)
        if way_back:
            start = way_back.index(min(way_back))
            found.add((*way_back[start:], *way_back[:start], min(way_back)))
    return tuple(sorted(found))


def _shortest_way_back(start: str, arrows: Mapping[str, frozenset[str]]) -> list[str]:
    """The modules on the shortest path from start back to start (start first), or []."""
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        for imported in sorted(arrows.get(module, ())):
            if imported == start:
                return list(_walk_back(module, came_from, start))[::-1]
            if imported not in came_from:
                came_from[imported] = module
                queue.append(imported)
    return []


def _walk_back(module: str, came_from: Mapping[str, str], start: str) -> Iterator[str]:
    """From module back along the breadth-first search's steps to start."""
    while module != start:
        yield module
        module = came_from[module]
    yield start
