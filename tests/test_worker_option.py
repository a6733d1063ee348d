"""The worker option leaves no trace when it is not chosen, and a whole process type when it is."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from baking import text_files


def bake(cookies: Any, **answers: str) -> Path:
    """Bake with these answers; fail on any error."""
    result = cookies.bake(extra_context=answers)
    assert result.exception is None, result.exception
    return Path(result.project_path)


def test_without_a_worker_nothing_names_celery_or_redis(cookies: Any) -> None:
    project = bake(cookies, worker="none")
    mentions = [
        str(path.relative_to(project))
        for path, text in text_files(project)
        # Whole words: HAProxy's `option redispatch` names neither.
        if re.search(r"\b(celery|redis)\b", text, re.IGNORECASE)
    ]
    assert mentions == []
    assert not list(project.rglob("*worker*"))


def test_with_celery_the_worker_is_a_declared_process_type(cookies: Any) -> None:
    project = bake(cookies, worker="celery")
    procfile = (project / "Procfile").read_text().splitlines()
    assert any(line.startswith("worker: celery ") for line in procfile)
    assert "celery[redis]" in (project / "pyproject.toml").read_text()
    assert (project / "src" / "my_service" / "task_queue" / "worker.py").is_file()
    assert "## Background worker" in (project / "README.md").read_text()
