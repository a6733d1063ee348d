"""Baked projects install, lint and pass their own test suite, through their own Makefile."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from baked_project import BakedProject, describe_failure, make_env, run_make
from interpreters import find_interpreter, interpreter_candidates
from template import CHOICE_QUESTIONS, TEMPLATE_DIR, choices

pytestmark = pytest.mark.baked

PYTHON_VERSIONS = choices("python_version")
DEFAULT_PYTHON = PYTHON_VERSIONS[0]

# Choices that change only texts (the license, the PostgreSQL named in docs and deploy
# files, the CI and Kubernetes files, which tests/deploy_files/ validates) are
# linted; every other choice but the Python version (below) changes code or dependencies,
# so each of its values gets the whole make install, make lint and make test.
TEXT_ONLY_QUESTIONS = {"ci", "kubernetes", "license", "postgres_version"}

# `make install` uses uv when it is on PATH, and venv + pip otherwise. The default answers
# are installed as on a fresh machine with Python, pip and make but no uv anywhere on PATH;
# every other variant (and tests/test_factor_exercises.py's default project) uses uv.
DEFAULT_VARIANT = f"python-{DEFAULT_PYTHON}-without-uv"


def _variant(answers: dict[str, str], uv_on_path: bool, name: str) -> Any:
    """One baked variant: its id, and the mark that lets TEMPLATE_BAKED_VARIANTS choose it."""
    return pytest.param(answers, uv_on_path, id=name, marks=pytest.mark.baked_variant(name))


# Each of these changes code or dependencies, so it gets the whole make install, make lint
# and make test.
FULL_SUITE_VARIANTS = [
    _variant({"python_version": DEFAULT_PYTHON}, False, DEFAULT_VARIANT),
    *(
        _variant({question: value}, True, f"{question}-{value}")
        for question in CHOICE_QUESTIONS
        if question not in TEXT_ONLY_QUESTIONS | {"python_version"}
        for value in choices(question)[1:]
    ),
    # The worker's tasks and its Redis calls are traced only when both options are chosen.
    _variant(
        {"worker": "celery", "observability": "opentelemetry"},
        True,
        "worker-celery+observability-opentelemetry",
    ),
]

# The other Python versions change no code: a bake for one differs from the default only in
# the version it names (requires-python, ruff's and mypy's target, the Makefile, Dockerfile,
# CI file, docs and the replay file); the universal locks pin the same packages. So each runs
# less than the whole suite, and still proves the interpreter: `make install` builds its
# .venv from the lock, `make lint` runs ruff and mypy for that target, and `make factors`
# runs the twelve-factor suite on it, which starts the web process and serves requests
# (factor VII's test), migrates, logs and stops it.
OTHER_PYTHON_VARIANTS = [
    _variant({"python_version": version}, True, f"python-{version}")
    for version in PYTHON_VERSIONS[1:]
]

EVERY_VARIANT = [FULL_SUITE_VARIANTS[0], *OTHER_PYTHON_VARIANTS, *FULL_SUITE_VARIANTS[1:]]

# Answers that change names and texts: each is linted, in the default project's
# already-installed .venv when its lock pins the same packages; so they run with that variant.
LINT_VARIANTS = [
    pytest.param({"project_name": "Café Zürich Ñandú"}, id="non-ascii-name"),
    pytest.param(
        {"project_name": "O'Brien's \"Quoted\" Service", "author_name": "Renée O'Connor"},
        id="quotes-and-apostrophes",
    ),
    pytest.param({"description": r"Stores C:\todo\lists: one per user \ fast"}, id="backslash"),
    # The package name appears in code; a long one must still keep every line within 100.
    pytest.param(
        {"project_name": "Inventory and Order Management Platform Services 2"}, id="long-name"
    ),
    *(
        pytest.param({question: value}, id=f"{question}-{value}")
        for question in sorted(TEXT_ONLY_QUESTIONS)
        for value in choices(question)[1:]
    ),
]

# A file ruff check refuses (F401, an unused import) and ruff format, mypy and the lock check
# accept, so that only one hook fails.
UNUSED_IMPORT = '''"""Put here by the template's tests: pre-commit must stop this lint error."""

import os
'''

FAILING_TEST = '''
def test_harness_sees_this_failure() -> None:
    """Put here by the template's tests to prove a broken project fails `make test`."""
    assert 1 + 1 == 3
'''


def _uv_cache_dir(tools_dir: Path) -> str:
    """One uv cache for every bake: the caller's, or uv's own default location."""
    uv = shutil.which("uv", path=str(tools_dir)) or shutil.which("uv")
    if uv is None:
        return ""
    answer = subprocess.run(
        [uv, "cache", "dir"], capture_output=True, text=True, check=False, timeout=60
    )
    return answer.stdout.strip()


def _lock_digest(project: Path) -> str:
    """What an installed .venv depends on besides the Python version: the pins and hashes.

    Comments are left out: the lock's `# via <project>` notes name each bake differently.
    """
    lock = (project / "requirements-dev.lock").read_text(encoding="utf-8")
    pins = [line.split("#", 1)[0].strip() for line in lock.splitlines()]
    return hashlib.sha256("\n".join(pin for pin in pins if pin).encode()).hexdigest()


def _path_without_uv(interpreter: str) -> str:
    """A PATH as on a machine with Python, pip and make only: the folders of make, the shell,
    its tools and git, and the interpreter's own folder. Skip if uv is in one of them."""
    folders: list[str] = []
    for tool in ("make", "sh", "env", "sed", "git"):
        found = shutil.which(tool)
        if found is None:
            pytest.skip(f"`{tool}` is not on PATH")
        folders.append(str(Path(found).parent))
    folders.append(str(Path(interpreter).parent))
    path = os.pathsep.join(dict.fromkeys(folders))
    uv = shutil.which("uv", path=path)
    if uv is not None:
        pytest.skip(f"uv is installed at {uv}, beside make, git or Python: no PATH lacks it")
    return path


def _check(project: BakedProject, *arguments: str) -> None:
    """Run a make target and fail with the tail of its output if it does not succeed."""
    result = project.make(*arguments)
    if result.returncode != 0:
        pytest.fail(describe_failure(project.path, arguments, result), pytrace=False)


class Bakery:
    """Bakes projects, and installs each set of answers at most once per session."""

    def __init__(
        self, cookies: Any, tmp_path_factory: pytest.TempPathFactory, database_url: str
    ) -> None:
        self._cookies = cookies
        self._tmp = tmp_path_factory
        self._database_url = database_url
        self._tools_dir = Path(sys.executable).parent
        self._uv_cache_dir = _uv_cache_dir(self._tools_dir)
        self._installed: dict[tuple[bool, tuple[tuple[str, str], ...]], BakedProject] = {}

    def env(self, python_version: str, *, uv_on_path: bool = True) -> dict[str, str]:
        """The environment for make in a project of that Python version.

        Without uv, PATH holds only what a fresh machine has (see _path_without_uv), and no
        uv variable is set.
        """
        mypy_cache = self._tmp.getbasetemp() / f"mypy-cache-{python_version}"
        mypy_cache.mkdir(exist_ok=True)
        env = make_env(
            tools_dir=self._tools_dir,
            uv_cache_dir=self._uv_cache_dir,
            mypy_cache_dir=mypy_cache,
            database_url=self._database_url,
        )
        if not uv_on_path:
            env["PATH"] = _path_without_uv(self.interpreter(python_version))
            return {name: value for name, value in env.items() if not name.startswith("UV_")}
        if not self._uv_cache_dir:
            del env["UV_CACHE_DIR"]
        return env

    def bake(self, **answers: str) -> Path:
        """Bake the template with these answers and return the project directory."""
        result = self._cookies.bake(extra_context=answers, template=str(TEMPLATE_DIR))
        if result.exception is not None:
            pytest.fail(f"baking {answers} failed: {result.exception!r}", pytrace=False)
        return Path(result.project_path)

    def interpreter(self, python_version: str) -> str:
        """A working interpreter of that version, or skip saying where we looked."""
        interpreter = find_interpreter(python_version)
        if interpreter is None:
            looked = ", ".join(interpreter_candidates(python_version)) or "nowhere usable"
            pytest.skip(
                f"no working Python {python_version}: looked for python{python_version} on PATH "
                f"and under pyenv's versions/{python_version}* ({looked}); install it "
                f"(e.g. `pyenv install {python_version}`) to bake and test that choice"
            )
        return interpreter

    def install(self, *, uv_on_path: bool = True, **answers: str) -> BakedProject:
        """Bake a project and run its own `make install` with the chosen interpreter."""
        python_version = answers.get("python_version", DEFAULT_PYTHON)
        interpreter = self.interpreter(python_version)
        env = self.env(python_version, uv_on_path=uv_on_path)
        path = self.bake(**answers)
        project = BakedProject(path, python_version, interpreter, env)
        _check(project, "install", f"PYTHON={interpreter}")
        return project

    def installed(self, *, uv_on_path: bool = True, **answers: str) -> BakedProject:
        """The session's one installed project for these answers and installer."""
        key = (uv_on_path, tuple(sorted(answers.items())))
        if key not in self._installed:
            self._installed[key] = self.install(uv_on_path=uv_on_path, **answers)
        return self._installed[key]


@pytest.fixture(scope="session")
def bakery(
    cookies_session: Any, tmp_path_factory: pytest.TempPathFactory, test_database_url: str
) -> Bakery:
    """Bakes and installs projects, sharing what can be shared across the session."""
    return Bakery(cookies_session, tmp_path_factory, test_database_url)


@pytest.mark.parametrize(("variant", "uv_on_path"), EVERY_VARIANT)
def test_make_install_builds_the_venv(
    bakery: Bakery, variant: dict[str, str], uv_on_path: bool
) -> None:
    project = bakery.installed(uv_on_path=uv_on_path, **variant)
    version = subprocess.run(
        [str(project.path / ".venv" / "bin" / "python"), "-c", "import sys; print(sys.version)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.startswith(f"{project.python_version}.")
    # uv names itself in the pyvenv.cfg of the environments it makes; venv does not.
    pyvenv_cfg = (project.path / ".venv" / "pyvenv.cfg").read_text(encoding="utf-8")
    assert ("\nuv = " in pyvenv_cfg) is uv_on_path, pyvenv_cfg


@pytest.mark.parametrize(("variant", "uv_on_path"), EVERY_VARIANT)
def test_make_lint_passes(bakery: Bakery, variant: dict[str, str], uv_on_path: bool) -> None:
    _check(bakery.installed(uv_on_path=uv_on_path, **variant), "lint")


@pytest.mark.parametrize(("variant", "uv_on_path"), FULL_SUITE_VARIANTS)
def test_make_test_passes(
    bakery: Bakery, variant: dict[str, str], uv_on_path: bool, request: pytest.FixtureRequest
) -> None:
    project = bakery.installed(uv_on_path=uv_on_path, **variant)
    # What the baked suite keeps (the /docs page's screenshot) outlives the bake, one folder a
    # variant, emptied first so that nothing in it is left from an earlier run.
    artifacts = TEMPLATE_DIR / "test-artifacts" / request.node.callspec.id
    shutil.rmtree(artifacts, ignore_errors=True)
    env = {**project.env, "TEST_ARTIFACTS_DIR": str(artifacts)}
    _check(dataclasses.replace(project, env=env), "test")


@pytest.mark.parametrize(("variant", "uv_on_path"), OTHER_PYTHON_VARIANTS)
def test_make_factors_passes(bakery: Bakery, variant: dict[str, str], uv_on_path: bool) -> None:
    _check(bakery.installed(uv_on_path=uv_on_path, **variant), "factors")


@pytest.mark.baked_variant(DEFAULT_VARIANT)
@pytest.mark.parametrize("variant", LINT_VARIANTS)
def test_variant_passes_lint(bakery: Bakery, variant: dict[str, str]) -> None:
    # The session's default project, the one installed without uv.
    installed = bakery.installed(uv_on_path=False, python_version=DEFAULT_PYTHON)
    path = bakery.bake(**variant)
    project = BakedProject(path, DEFAULT_PYTHON, installed.interpreter, bakery.env(DEFAULT_PYTHON))
    if _lock_digest(path) == _lock_digest(installed.path):
        # Same Python, same lock: borrow the installed .venv (and mypy's warm cache of
        # its libraries); --old-file stops make from reinstalling into the borrowed one.
        (path / ".venv").symlink_to(installed.path / ".venv", target_is_directory=True)
        _check(project, "--old-file=.venv/.installed", "lint")
    else:
        _check(project, "install", f"PYTHON={installed.interpreter}")
        _check(project, "lint")


@pytest.mark.baked_variant(DEFAULT_VARIANT)
def test_harness_fails_when_the_baked_suite_fails(bakery: Bakery) -> None:
    # The session's default project, installed once: the planted test is removed after.
    project = bakery.installed(uv_on_path=False, python_version=DEFAULT_PYTHON)
    planted = project.path / "tests" / "test_harness_failure.py"
    planted.write_text(FAILING_TEST)
    # Run only the planted test, so proving the harness costs seconds, not a whole suite.
    env = {**project.env, "PYTEST_ADDOPTS": "-k test_harness_sees_this_failure"}
    try:
        result = run_make(project.path, "test", env=env)
        assert result.returncode != 0
        report = describe_failure(project.path, ("test",), result)
        assert "test_harness_sees_this_failure" in report
        assert "1 failed" in report
        with pytest.raises(pytest.fail.Exception, match="exited"):
            _check(BakedProject(project.path, DEFAULT_PYTHON, project.interpreter, env), "test")
    finally:
        planted.unlink()


def _pre_commit(project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`pre-commit run --all-files` with the project's own pre-commit, output and errors as one."""
    return subprocess.run(
        [str(project / ".venv" / "bin" / "pre-commit"), "run", "--all-files", "--color=never"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.baked_variant(DEFAULT_VARIANT)
def test_pre_commit_hooks_pass_offline_then_stop_a_planted_lint_error(
    bakery: Bakery, tmp_path: Path
) -> None:
    installed = bakery.installed(uv_on_path=False, python_version=DEFAULT_PYTHON)
    config = yaml.safe_load((installed.path / ".pre-commit-config.yaml").read_text())
    assert [repo["repo"] for repo in config["repos"]] == ["local"], "no hook may be fetched"
    # pre-commit runs on the files git knows: a copy of the session's default project, put
    # under git, with its installed .venv borrowed (and kept out of git).
    project = tmp_path / installed.path.name
    shutil.copytree(
        installed.path,
        project,
        ignore=shutil.ignore_patterns(".venv", "*_cache", "__pycache__", "test-artifacts"),
    )
    (project / ".venv").symlink_to(installed.path / ".venv", target_is_directory=True)
    env = {
        **installed.env,
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
        # A hook repository to clone would fail: git may use local files only.
        "GIT_ALLOW_PROTOCOL": "file",
    }
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not on PATH")
    subprocess.run([git, "init", "--quiet"], cwd=project, env=env, check=True)
    (project / ".git" / "info" / "exclude").write_text(".venv\n")
    subprocess.run([git, "add", "--all"], cwd=project, env=env, check=True)

    passed = _pre_commit(project, env)
    assert passed.returncode == 0, passed.stdout
    hooks = [hook["name"] for hook in config["repos"][0]["hooks"]]
    for name in hooks:
        assert re.search(rf"^{re.escape(name)}\.+Passed$", passed.stdout, re.MULTILINE), (
            f"the hook {name!r} did not run and pass:\n{passed.stdout}"
        )

    (project / "tests" / "test_planted_lint_error.py").write_text(UNUSED_IMPORT)
    subprocess.run([git, "add", "--all"], cwd=project, env=env, check=True)
    stopped = _pre_commit(project, env)
    assert stopped.returncode != 0, stopped.stdout
    assert "- hook id: ruff-check" in stopped.stdout, stopped.stdout
    assert "tests/test_planted_lint_error.py:3:8" in stopped.stdout, stopped.stdout
