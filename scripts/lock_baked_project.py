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
LOCKS = {"requirements.lock": [], "requirements-dev.lock": ["--group", "dev"]}


def main() -> int:
    """Bake the default project, lock it, and copy the locks back with the slug templated."""
    uv = shutil.which("uv")
    if uv is None:
        print("uv is not on PATH; run `make install` at the template root first", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as output:
        project = Path(cookiecutter(str(TEMPLATE_ROOT), no_input=True, output_dir=output))
        slug = project.name
        for lock_name, extra in LOCKS.items():
            command = [uv, "pip", "compile", "pyproject.toml", *extra, "--universal"]
            command += ["--generate-hashes", "--python-version", LOWEST_PYTHON]
            command += ["--quiet", "-o", lock_name]
            subprocess.run(command, cwd=project, check=True)
            text = (project / lock_name).read_text()
            templated = text.replace(f"{slug} (pyproject.toml)", "{{ cookiecutter.project_slug }} (pyproject.toml)")
            (PROJECT_TEMPLATE / lock_name).write_text(templated)
            print(f"wrote {lock_name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
