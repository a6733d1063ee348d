"""No import circles: in the baked package, for every combination of the options that add
code, and in the template's own hooks, bench and tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from import_graph import circles, describe, import_graph

from harness import TEMPLATE_DIR

CODE_OPTIONS = {
    "default": {},
    "celery": {"worker": "celery"},
    "opentelemetry": {"observability": "opentelemetry"},
    "both": {"worker": "celery", "observability": "opentelemetry"},
}


@pytest.mark.parametrize("answers", CODE_OPTIONS.values(), ids=CODE_OPTIONS.keys())
def test_the_baked_package_imports_in_no_circle(cookies: Any, answers: dict[str, str]) -> None:
    result = cookies.bake(extra_context={**answers, "ci": "none", "kubernetes": "no"})
    assert result.exception is None, result.exception
    package = Path(result.project_path) / "src" / "my_service"
    graph = import_graph(package, "my_service")
    assert len(graph) > 20
    assert circles(graph) == [], describe(circles(graph))


@pytest.mark.parametrize("folder", ["hooks", "bench", "tests"])
def test_the_template_code_imports_in_no_circle(folder: str) -> None:
    # bench is a package; hooks and tests are folders of top-level modules on sys.path.
    prefix = "bench" if folder == "bench" else ""
    graph = import_graph(TEMPLATE_DIR / folder, prefix)
    assert graph
    assert circles(graph) == [], describe(circles(graph))


def test_a_planted_circle_is_found_and_named(tmp_path: Path) -> None:
    package = tmp_path / "shop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "orders.py").write_text("from .stock import reserve\n")
    (package / "stock.py").write_text("def reserve():\n    from . import billing\n")
    (package / "billing.py").write_text("from shop.orders import place\n")
    (package / "catalog.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .orders import Order\n"
    )
    found = circles(import_graph(package, "shop"))
    assert describe(found) == "shop.billing -> shop.orders -> shop.stock -> shop.billing"


def test_imports_that_run_one_way_make_no_circle(tmp_path: Path) -> None:
    package = tmp_path / "shop"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from .orders import place\n")
    (package / "orders.py").write_text("from .sub.rules import check\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "rules.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..catalog import Item\n"
    )
    (package / "catalog.py").write_text("import json\n")
    graph = import_graph(package, "shop")
    assert graph["shop.orders"] == {"shop.sub.rules"}
    assert graph["shop.sub.rules"] == {"shop.catalog"}
    assert circles(graph) == []
