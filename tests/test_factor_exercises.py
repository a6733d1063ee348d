"""Each exercise of the baked factor pages breaks its own factor, and no other.

The default project is baked once, committed to git and installed (conftest.py's
`installed_project`, shared with the rolling release test). Its factor pages,
docs/factors/NN-<name>.md, are read in order as a student reads them: per factor, the
change that breaks it (a diff for `git apply`, or a command), the row of `make factors` it
turns red, the tests it names as failing, and the command that undoes it. So the pages and
this proof cannot drift apart. Each exercise is applied to a copy of the project, whose
factor suite runs with the installed environment (the copy's source first on PYTHONPATH),
two copies at a time; the printed table must show that exercise's row alone as FAIL.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from baked_project import GIT_IDENTITY, BakedProject, describe_failure, tail

pytestmark = pytest.mark.baked

ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII")
FACTOR_PAGES = Path("docs") / "factors"
PAGE_TITLE = re.compile(r"^# (.+)$", re.MULTILINE)
EXERCISE_HEADING = "#### Exercise: break it"
FENCED_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
RED_ROW = re.compile(r"the row `([^`]+)` turns `FAIL`")
TEST_NAME = re.compile(r"`(test_\w+(?:\[[^\]`]*\])?)`")
# A row of the table that tests/factors/conftest.py prints: verdict, factor, summary.
TABLE_ROW = re.compile(r"^(PASS|FAIL|SKIP) +([IVX]+\. .+?)(?: {2,}.*)?$")
# Copies run at once: the machine's two cores are shared with the rest of the suite.
PARALLEL_COPIES = 2


@dataclass(frozen=True)
class Exercise:
    """One factor's exercise, as its page states it."""

    numeral: str
    title: str
    kind: str
    change: str
    red_row: str
    failing_tests: tuple[str, ...]
    undo: str


@dataclass(frozen=True)
class ExerciseRun:
    """What happened to a copy of the project broken by one exercise, then repaired."""

    exercise: Exercise
    applied: subprocess.CompletedProcess[str]
    factors: subprocess.CompletedProcess[str] | None
    undone: subprocess.CompletedProcess[str] | None
    status_after_undo: str


def read_exercises(pages: list[str]) -> list[Exercise]:
    """Every factor page's exercise, in the pages' order."""
    exercises = []
    for page in pages:
        heading = PAGE_TITLE.search(page)
        assert heading, f"a factor page has no title:\n{page[:200]}"
        title = heading.group(1).strip()
        if EXERCISE_HEADING not in page:
            continue
        part = page.split(EXERCISE_HEADING, 1)[1]
        blocks = list(FENCED_BLOCK.finditer(part))
        assert len(blocks) >= 2, f"{title}: an exercise needs a change and an undo block"
        change, undo = blocks[0], blocks[-1]
        red_row = RED_ROW.search(part)
        assert red_row, f"{title}: the exercise names no row that turns FAIL"
        explanation = part[change.end() : undo.start()]
        exercises.append(
            Exercise(
                numeral=title.split(".")[0],
                title=title,
                kind=change.group(1),
                change=change.group(2),
                red_row=red_row.group(1),
                failing_tests=tuple(TEST_NAME.findall(explanation)),
                undo=undo.group(2),
            )
        )
    return exercises


def factor_table(output: str) -> dict[str, str]:
    """The rows of the twelve-factor table in a run's output: factor to verdict."""
    rows = {}
    for line in output.splitlines():
        found = TABLE_ROW.match(line)
        if found:
            rows[found.group(2)] = found.group(1)
    return rows


def printed_table(output: str) -> str:
    """The table as printed, for failure messages."""
    return "\n".join(line for line in output.splitlines() if TABLE_ROW.match(line))


def factors_command(project: Path, bin_dir: Path) -> list[str]:
    """The command of the project's `make factors` recipe, with its .venv/bin spelled out."""
    lines = (project / "Makefile").read_text(encoding="utf-8").splitlines()
    target = next(number for number, line in enumerate(lines) if line.startswith("factors:"))
    recipe = lines[target + 1]
    assert recipe.startswith("\t$(BIN)/"), f"unexpected factors recipe: {recipe!r}"
    return shlex.split(recipe.strip().replace("$(BIN)", str(bin_dir)))


def run(
    command: list[str], cwd: Path, env: dict[str, str], text_input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command in a project, its output and errors together."""
    return subprocess.run(
        command,
        cwd=cwd,
        env=env,
        input=text_input,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.fixture(scope="module")
def exercises(installed_project: BakedProject) -> list[Exercise]:
    """The exercises of the baked factor pages, in the pages' order."""
    pages = sorted((installed_project.path / FACTOR_PAGES).glob("*.md"))
    return read_exercises([page.read_text(encoding="utf-8") for page in pages])


def break_and_repair(installed: BakedProject, exercise: Exercise, copy: Path) -> ExerciseRun:
    """Apply an exercise to a fresh copy of the project, run its factors, then undo it."""
    shutil.copytree(installed.path, copy, ignore=shutil.ignore_patterns(".venv", "*_cache"))
    env = {**installed.env, **GIT_IDENTITY, "PYTHONPATH": str(copy / "src")}
    if exercise.kind == "diff":
        applied = run(["git", "apply"], copy, env, text_input=exercise.change)
    else:
        applied = run(["sh", "-c", exercise.change], copy, env)
    if applied.returncode != 0:
        return ExerciseRun(exercise, applied, None, None, "")
    factors = run(factors_command(copy, installed.path / ".venv" / "bin"), copy, env)
    undone = run(["sh", "-c", exercise.undo], copy, env)
    status = run(["git", "status", "--porcelain"], copy, env).stdout
    return ExerciseRun(exercise, applied, factors, undone, status)


@pytest.fixture(scope="module")
def exercise_runs(
    request: pytest.FixtureRequest,
    installed_project: BakedProject,
    exercises: list[Exercise],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, ExerciseRun]:
    """The exercises this session asks about, each applied to a copy of its own,
    PARALLEL_COPIES at a time, by numeral (`-k VIII` runs one copy, not twelve)."""
    wanted = {
        item.callspec.params["numeral"]
        for item in request.session.items
        if item.module is request.module and hasattr(item, "callspec")
    }
    copies = tmp_path_factory.mktemp("exercises")
    with ThreadPoolExecutor(max_workers=PARALLEL_COPIES) as pool:
        runs = pool.map(
            lambda exercise: break_and_repair(
                installed_project, exercise, copies / exercise.numeral
            ),
            [exercise for exercise in exercises if exercise.numeral in wanted],
        )
        return {run.exercise.numeral: run for run in runs}


def test_the_pages_have_one_exercise_per_factor_in_order(exercises: list[Exercise]) -> None:
    assert [exercise.numeral for exercise in exercises] == list(ROMAN)
    for exercise in exercises:
        assert exercise.kind in {"diff", "sh"}, exercise.title
        assert exercise.red_row.startswith(f"{exercise.numeral}. "), exercise.title
        assert exercise.failing_tests, f"{exercise.title}: name the test that fails"


def test_the_unbroken_project_passes_every_factor(installed_project: BakedProject) -> None:
    result = installed_project.make("factors")
    table = factor_table(result.stdout)
    assert result.returncode == 0, describe_failure(installed_project.path, ("factors",), result)
    assert len(table) == len(ROMAN), printed_table(result.stdout)
    assert set(table.values()) == {"PASS"}, printed_table(result.stdout)


@pytest.mark.parametrize("numeral", ROMAN)
def test_each_exercise_turns_its_own_factor_red_and_no_other(
    exercise_runs: dict[str, ExerciseRun], numeral: str
) -> None:
    broken = exercise_runs[numeral]
    exercise = broken.exercise
    assert broken.applied.returncode == 0, (
        f"the exercise of factor {exercise.title} does not apply to the baked project:\n"
        f"{broken.applied.stdout}"
    )
    assert broken.factors is not None
    output = broken.factors.stdout
    table = factor_table(output)
    expected = {row: "FAIL" if row == exercise.red_row else "PASS" for row in table}
    wrong_rows = (
        f"the exercise of factor {exercise.title} should turn `{exercise.red_row}` alone red; "
        f"make factors printed:\n{printed_table(output)}\n--- its last lines ---\n"
        f"{tail(output, 60)}"
    )
    assert len(table) == len(ROMAN), wrong_rows
    assert exercise.red_row in table, wrong_rows
    assert table == expected, wrong_rows
    failed = [line for line in output.splitlines() if line.startswith("FAILED ")]
    for test_name in exercise.failing_tests:
        assert any(f"::{test_name}" in line for line in failed), (
            f"the page of factor {exercise.title} says {test_name} fails when it is broken; "
            f"the tests that failed were:\n" + "\n".join(failed)
        )


@pytest.mark.parametrize("numeral", ROMAN)
def test_each_exercise_is_undone_by_its_undo_command(
    exercise_runs: dict[str, ExerciseRun], numeral: str
) -> None:
    repaired = exercise_runs[numeral]
    assert repaired.undone is not None, f"the exercise of factor {numeral} was never applied"
    assert repaired.undone.returncode == 0, repaired.undone.stdout
    assert repaired.status_after_undo == "", (
        f"after the undo of factor {repaired.exercise.title}'s exercise, git status shows:\n"
        f"{repaired.status_after_undo}"
    )
