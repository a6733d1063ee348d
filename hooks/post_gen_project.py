"""Shape the baked project to the answers, then say what to do next.

Cookiecutter runs this from a temporary file inside the new project's directory.
It only moves and deletes files there: no network, no git, no installs. Every
step checks the state first, so running it again (as `cruft update` does) leaves
the project as it is.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

LICENSE_TEXTS = Path("licenses")
LICENSE_FILE = Path("LICENSE")

# Paths that belong to one option: (answer name, the values that keep the paths,
# the paths). A path is removed when the answer is none of those values. Paths
# are relative to the project root and may name `{package_name}`.
OPTIONAL_PATHS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    (
        "worker",
        ("celery",),
        (
            "src/{package_name}/task_queue",
            "src/{package_name}/observability/task_queue_option.py",
            "migrations/versions/20261129_0002_archive_todos.py",
            "tests/task_queue",
            "tests/factors/test_08_concurrency_of_tasks.py",
            "tests/observability/test_task_metrics.py",
            "tests/observability/test_task_traces.py",
            "deploy/kubernetes/base/worker-deployment.yaml",
        ),
    ),
    (
        "observability",
        ("opentelemetry",),
        ("src/{package_name}/observability", "tests/observability", "observability"),
    ),
    ("ci", ("github",), (".github",)),
    # Each CI system comes with its update bot: Dependabot in .github/, Renovate for GitLab.
    ("ci", ("gitlab",), (".gitlab-ci.yml", "renovate.json")),
    # The scheduled jobs' scripts: the template update runs on both platforms; the lock
    # update on GitHub alone, as Renovate keeps GitLab's locks.
    ("ci", ("github", "gitlab"), ("ci",)),
    ("ci", ("github",), ("ci/lock_update.py",)),
    # deploy/ holds nothing but the Kubernetes manifests, so it goes with them.
    ("kubernetes", ("yes",), ("deploy",)),
)

# Lock files of answers whose dependencies differ from the default's. The questions that
# change the dependencies, in the order their answers name a folder under LOCK_VARIANTS:
# worker=celery alone locks from worker-celery/, with observability=opentelemetry too from
# worker-celery+observability-opentelemetry/. The chosen folder's locks replace the default ones.
LOCK_VARIANTS = Path("locks")
LOCK_QUESTIONS: tuple[str, ...] = ("worker", "observability")
NO_OPTION = "none"


class PostGenError(RuntimeError):
    """The baked tree is not in a state this hook knows how to finish."""


def install_license(answers: Mapping[str, object], root: Path) -> None:
    """Make the chosen text the project's LICENSE and drop the others."""
    texts = root / LICENSE_TEXTS
    if not texts.is_dir():
        if (root / LICENSE_FILE).is_file():
            return
        raise PostGenError(
            f"neither {LICENSE_TEXTS}/ nor {LICENSE_FILE} exists in {root}; "
            "bake the project again from the template."
        )
    chosen = texts / f"{answers['license']}.txt"
    if not chosen.is_file():
        raise PostGenError(
            f"the template has no license text {chosen.name} for license {answers['license']!r}."
        )
    chosen.replace(root / LICENSE_FILE)
    shutil.rmtree(texts)


def lock_folder(answers: Mapping[str, object]) -> str | None:
    """The folder under LOCK_VARIANTS whose locks these answers take; None for the default's."""
    chosen = [
        f"{question}-{answers[question]}"
        for question in LOCK_QUESTIONS
        if str(answers.get(question, NO_OPTION)) != NO_OPTION
    ]
    return "+".join(chosen) or None


def install_locks(answers: Mapping[str, object], root: Path) -> None:
    """Put the locks of the chosen answers in place of the default ones; drop the rest."""
    variants = root / LOCK_VARIANTS
    if not variants.is_dir():
        return
    folder = lock_folder(answers)
    if folder is not None:
        chosen = variants / folder
        if not chosen.is_dir():
            raise PostGenError(
                f"the template has no locks {LOCK_VARIANTS / folder}/ for these answers."
            )
        for lock in sorted(chosen.glob("*.lock")):
            lock.replace(root / lock.name)
    shutil.rmtree(variants)


def unchosen_paths(
    answers: Mapping[str, object],
    table: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...],
) -> list[Path]:
    """List the paths of options the answers did not choose, in table order."""
    paths: list[Path] = []
    for option, keeping_values, option_paths in table:
        if str(answers.get(option, "")) in keeping_values:
            continue
        paths.extend(Path(path.format_map(answers)) for path in option_paths)
    return paths


def remove_paths(paths: list[Path], root: Path) -> None:
    """Delete each path under root; one already gone is fine."""
    for path in paths:
        target = root / path
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()


def next_steps(answers: Mapping[str, object]) -> str:
    """The commands that take a fresh project to a running, tested service."""
    return "\n".join(
        (
            "",
            f"Created {answers['project_slug']}/. Next steps:",
            "",
            f"    cd {answers['project_slug']}",
            "    make install            # .venv with the locked dependencies",
            "    make .env               # local settings with a fresh SECRET_KEY; git-ignored",
            "    make migrate            # apply the database migrations",
            "    make run                # the web process, on $PORT from .env",
            "    make dev                # or flask run --debug: reloader and debugger",
            "    make test               # the test suite, against PostgreSQL",
            "",
        )
    )


def main(answers: Mapping[str, object], root: Path) -> int:
    """Finish the project in root and print the next steps."""
    try:
        install_license(answers, root)
        install_locks(answers, root)
        remove_paths(unchosen_paths(answers, OPTIONAL_PATHS), root)
    except PostGenError as problem:
        print(f"\nERROR: {problem}\n", file=sys.stderr)
        return 1
    print(next_steps(answers))
    return 0


if __name__ == "__main__":
    # Jinja's tojson escapes quotes inside strings and never emits two string
    # tokens side by side, so the rendered JSON cannot close this raw literal early.
    sys.exit(main(json.loads(r"""{{ cookiecutter | tojson }}"""), Path.cwd()))
