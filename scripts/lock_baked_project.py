"""Re-resolve the baked project's lock files and store them in the template.

The locks ship inside the template so that baking never resolves anything. Run this
(`make lock`) after changing a dependency range in the baked project's pyproject.toml.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from cookiecutter.main import cookiecutter

TEMPLATE_ROOT = Path(__file__).resolve().parent.parent
PROJECT_TEMPLATE = TEMPLATE_ROOT / "{{cookiecutter.project_slug}}"
# The oldest Python the template offers: a universal lock resolved for it serves them all.
LOWEST_PYTHON = "3.11"
# uv writes the command into each lock's header, where Renovate's pip-compile manager reads it
# to lock again; it reads options only in the --option=value form.
LOCKS = {"requirements.lock": [], "requirements-dev.lock": ["--group=dev"]}
# Answers that change the dependencies, and where their locks wait in the template; the
# post-gen hook moves the chosen variant's locks into place.
VARIANT_LOCKS = [
    ({"worker": "celery"}, "locks/worker-celery"),
    ({"observability": "opentelemetry"}, "locks/observability-opentelemetry"),
    (
        {"worker": "celery", "observability": "opentelemetry"},
        "locks/worker-celery+observability-opentelemetry",
    ),
]


def lock(answers: dict[str, str], destination: Path, uv: str) -> None:
    """Bake with these answers, lock the result, and store the locks with the slug templated."""
    if not (destination / "requirements.lock").is_file():
        # A new variant: start it from the default locks, so the bake finds locks to move and
        # uv keeps the default's versions of the packages they share.
        destination.mkdir(parents=True, exist_ok=True)
        for lock_name in LOCKS:
            shutil.copyfile(PROJECT_TEMPLATE / lock_name, destination / lock_name)
    with tempfile.TemporaryDirectory() as output:
        baked = cookiecutter(
            str(TEMPLATE_ROOT), no_input=True, output_dir=output, extra_context=answers
        )
        project = Path(baked)
        destination.mkdir(parents=True, exist_ok=True)
        for lock_name, extra in LOCKS.items():
            command = [uv, "pip", "compile", "pyproject.toml", *extra, "--universal"]
            command += ["--generate-hashes", f"--python-version={LOWEST_PYTHON}"]
            command += ["--quiet", f"--output-file={lock_name}"]
            subprocess.run(command, cwd=project, check=True)  # noqa: S603 - our own uv, fixed args
            text = (project / lock_name).read_text()
            slug_comment = f"{project.name} (pyproject.toml)"
            text = text.replace(slug_comment, "{{ cookiecutter.project_slug }} (pyproject.toml)")
            (destination / lock_name).write_text(text)
            print(f"wrote {(destination / lock_name).relative_to(TEMPLATE_ROOT)}")


def main() -> int:
    """Lock the default project, and each variant whose dependencies differ from it."""
    uv = shutil.which("uv")
    if uv is None:
        print("uv is not on PATH; run `make install` at the template root first", file=sys.stderr)
        return 1
    lock({}, PROJECT_TEMPLATE, uv)
    for answers, directory in VARIANT_LOCKS:
        lock(answers, PROJECT_TEMPLATE / directory, uv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
