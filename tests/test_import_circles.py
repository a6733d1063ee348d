"""Imports run one way: no circle in the template's own code, nor in any baked package.

The graphs are read from the source (tests/import_graph.py), so baking needs no install.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from import_graph import ImportGraph, read_folder, read_package
from template import TEMPLATE_DIR

# The answers that add modules to the baked package, each alone and both together. The
# other answers leave the package as it is, so the bakes skip CI files and manifests.
CODE_ANSWERS = [
    pytest.param({}, id="default"),
    pytest.param({"worker": "celery"}, id="celery"),
    pytest.param({"observability": "opentelemetry"}, id="opentelemetry"),
    pytest.param({"worker": "celery", "observability": "opentelemetry"}, id="celery-opentelemetry"),
]
QUICK_BAKE = {"ci": "none", "kubernetes": "no"}
# How each folder of the template's own code is imported: bench/ is a package run with
# `python -m bench`; pytest puts tests/ on sys.path, so its modules import each other by
# top-level name; cookiecutter runs each hook as a script of its own.
TEMPLATE_CODE = {"hooks": read_folder, "bench": read_package, "tests": read_folder}
WHAT_TO_DO = (
    "Move what the modules of a circle share into a module they all import, or let one "
    "call a hook the other offers, so that imports run one way (DESIGN.md, "
    '"Which module may import which").'
)


def circles_listed(graph: ImportGraph) -> str:
    """Each circle on a line of its own, as `a -> b -> a`."""
    return "\n".join(f"  {' -> '.join(circle)}" for circle in graph.circles)


def write_modules(root: Path, sources: dict[str, str]) -> None:
    """Write each file (a path under root) with its source."""
    for relative, source in sources.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")


@pytest.mark.parametrize("folder", TEMPLATE_CODE)
def test_template_code_imports_run_one_way(folder: str) -> None:
    graph = TEMPLATE_CODE[folder](TEMPLATE_DIR / folder)
    if graph.circles:
        pytest.fail(
            f"import circles in {folder}/:\n{circles_listed(graph)}\n{WHAT_TO_DO}", pytrace=False
        )


@pytest.fixture(scope="module", params=CODE_ANSWERS)
def baked_package(request: pytest.FixtureRequest, cookies_session: Any) -> Path:
    """The package folder of a quick bake (no CI files, no manifests, nothing installed)."""
    answers = {**request.param, **QUICK_BAKE}
    result = cookies_session.bake(extra_context=answers, template=str(TEMPLATE_DIR))
    if result.exception is not None:
        pytest.fail(f"baking {answers} failed: {result.exception!r}", pytrace=False)
    return Path(result.project_path) / "src" / result.context["package_name"]


def test_baked_package_imports_run_one_way(baked_package: Path) -> None:
    graph = read_package(baked_package)
    if graph.circles:
        pytest.fail(
            f"import circles in {baked_package}:\n{circles_listed(graph)}\n{WHAT_TO_DO}",
            pytrace=False,
        )


def test_a_planted_circle_is_reported_with_its_modules_in_order(tmp_path: Path) -> None:
    write_modules(
        tmp_path,
        {
            "planted/__init__.py": "",
            "planted/a.py": "from .b import step\n",
            "planted/b.py": "from .c import finish\n\n\ndef step():\n    return finish()\n",
            # Deferred to the call, the import back to a still closes the circle.
            "planted/c.py": "def finish():\n    from . import a\n\n    return a\n",
            "planted/outside.py": "from planted.a import step\n",
        },
    )
    graph = read_package(tmp_path / "planted")
    assert graph.circles == (("planted.a", "planted.b", "planted.c", "planted.a"),)
    assert graph.arrows["planted.outside"] == {"planted.a"}


def test_a_package_whose_imports_run_one_way_has_no_circle(tmp_path: Path) -> None:
    write_modules(
        tmp_path,
        {
            "tidy/__init__.py": "VERSION = '1'\n",
            "tidy/models.py": "class Todo:\n    pass\n",
            "tidy/service.py": "import tidy.models\nfrom tidy import VERSION\n",
            "tidy/views.py": (
                "from typing import TYPE_CHECKING\n\nfrom . import service\n\n"
                "if TYPE_CHECKING:\n    from .models import Todo\n"
            ),
        },
    )
    graph = read_package(tmp_path / "tidy")
    assert graph.circles == ()
    assert graph.modules == {"tidy", "tidy.models", "tidy.service", "tidy.views"}
    assert graph.arrows["tidy.service"] == {"tidy.models", "tidy"}
    # The import for type checking counts: it is one more arrow, here one that goes one way.
    assert graph.arrows["tidy.views"] == {"tidy.service", "tidy.models"}


def test_modules_of_a_folder_on_sys_path_import_each_other_by_top_level_name(
    tmp_path: Path,
) -> None:
    write_modules(
        tmp_path,
        {
            "fixtures.py": "from helpers import bake\n",
            "helpers.py": "import json\n\n\ndef bake():\n    import fixtures\n",
        },
    )
    graph = read_folder(tmp_path)
    assert graph.circles == (("fixtures", "helpers", "fixtures"),)
    assert graph.arrows["helpers"] == {"fixtures"}
