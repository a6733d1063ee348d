"""Bad answers are refused with one line naming the field, and nothing is written."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from baking import run_cookiecutter, tree_snapshot
from template import CHOICE_QUESTIONS, TEMPLATE_DIR, answers, choices, load_hook, render_hook

pre_gen = load_hook("pre_gen_project")
post_gen = load_hook("post_gen_project")

# (answers given on the command line, the field the refusal must name)
BAD_ANSWERS = [
    pytest.param({"package_name": "class"}, "package_name", id="package-keyword-class"),
    pytest.param({"package_name": "match"}, "package_name", id="package-soft-keyword-match"),
    pytest.param({"package_name": "type"}, "package_name", id="package-soft-keyword-type"),
    pytest.param({"package_name": "logging"}, "package_name", id="package-stdlib-logging"),
    pytest.param({"package_name": "flask"}, "package_name", id="package-dependency-flask"),
    pytest.param({"package_name": "pydantic_settings"}, "package_name", id="package-dependency"),
    pytest.param({"package_name": "test"}, "package_name", id="package-test"),
    pytest.param({"package_name": "My_Service"}, "package_name", id="package-upper-case"),
    pytest.param({"package_name": "my-service"}, "package_name", id="package-hyphen"),
    pytest.param({"project_slug": "My-Service"}, "project_slug", id="slug-upper-case"),
    pytest.param({"project_slug": "my service"}, "project_slug", id="slug-space"),
    pytest.param({"project_slug": "1service"}, "project_slug", id="slug-leading-digit"),
    pytest.param({"project_slug": "my--service"}, "project_slug", id="slug-double-hyphen"),
    pytest.param({"project_slug": "s" + "-service" * 7}, "project_slug", id="slug-too-long"),
    pytest.param({"project_slug": "my-service-"}, "project_slug", id="slug-trailing-hyphen"),
    pytest.param(
        {"project_name": "", "project_slug": "unnamed"}, "project_name", id="project-name-empty"
    ),
    pytest.param(
        {"project_name": "   ", "project_slug": "unnamed"}, "project_name", id="project-name-blank"
    ),
    pytest.param({"author_email": "you-at-example.com"}, "author_email", id="email-no-at"),
    pytest.param({"author_email": "you@localhost"}, "author_email", id="email-no-dot"),
    pytest.param({"author_email": "you @example.com"}, "author_email", id="email-space"),
    pytest.param({"author_name": ""}, "author_name", id="author-empty"),
    pytest.param({"author_name": "Ann\tLee"}, "author_name", id="author-tab"),
    pytest.param({"description": "two\nlines"}, "description", id="description-newline"),
    pytest.param({"version": "1.0-beta!"}, "version", id="version-not-pep440"),
    pytest.param({"version": "v1.0"}, "version", id="version-leading-v"),
    pytest.param({"python_version": "3.10"}, "python_version", id="python-unsupported"),
    pytest.param({"postgres_version": "14"}, "postgres_version", id="postgres-unsupported"),
    pytest.param({"license": "GPL-3.0"}, "license", id="license-unsupported"),
    pytest.param({"worker": "rq"}, "worker", id="worker-unsupported"),
    pytest.param({"observability": "datadog"}, "observability", id="observability-unsupported"),
    pytest.param(
        {"package_name": "opentelemetry", "observability": "opentelemetry"},
        "package_name",
        id="package-dependency-opentelemetry",
    ),
]

# The top-level modules that the observability option's packages install.
OBSERVABILITY_MODULES = [
    "opentelemetry",
    "google",
    "prometheus_client",
    "sentry_sdk",
    "wrapt",
    "requests",
    "urllib3",
    "certifi",
    "charset_normalizer",
    "idna",
]


@pytest.fixture
def output_dir(tmp_path: Path) -> Path:
    """An empty directory to bake into."""
    directory = tmp_path / "out"
    directory.mkdir()
    return directory


@pytest.mark.parametrize(("answers", "field"), BAD_ANSWERS)
def test_bad_answer_is_refused_and_nothing_is_written(
    answers: dict[str, str], field: str, output_dir: Path, cookiecutter_config: Path
) -> None:
    arguments = [f"{name}={value}" for name, value in answers.items()]
    result = run_cookiecutter(
        str(TEMPLATE_DIR), *arguments, output_dir=output_dir, config_file=cookiecutter_config
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    # Our hook's line, or cookiecutter's own refusal of a value outside a choice list.
    assert f"ERROR: {field} " in output or f"choice variable {field}," in output, output
    assert list(output_dir.iterdir()) == []


def test_hook_refusal_is_one_line_starting_with_error(
    output_dir: Path, cookiecutter_config: Path
) -> None:
    result = run_cookiecutter(
        str(TEMPLATE_DIR),
        "package_name=flask",
        output_dir=output_dir,
        config_file=cookiecutter_config,
    )
    refusals = [line for line in result.stderr.splitlines() if line.startswith("ERROR: ")]
    assert refusals == [
        "ERROR: package_name 'flask' shadows the 'flask' module the service or its tools "
        "depend on; choose another name such as 'flask_service'."
    ]


def test_unsupported_choice_in_a_replay_file_is_refused_by_the_hook(
    tmp_path: Path, output_dir: Path, cookiecutter_config: Path
) -> None:
    # A replay file skips cookiecutter's own check of choices; the hook still refuses.
    good = run_cookiecutter(
        str(TEMPLATE_DIR), output_dir=tmp_path / "first", config_file=cookiecutter_config
    )
    assert good.returncode == 0, good.stderr
    replay = json.loads(
        next((cookiecutter_config.parent / "replay").glob("*.json")).read_text(encoding="utf-8")
    )
    replay["cookiecutter"]["python_version"] = "3.10"
    replay_file = tmp_path / "replay.json"
    replay_file.write_text(json.dumps(replay), encoding="utf-8")

    result = run_cookiecutter(
        str(TEMPLATE_DIR),
        "--replay-file",
        str(replay_file),
        output_dir=output_dir,
        config_file=cookiecutter_config,
        no_input=False,
    )
    assert result.returncode != 0
    assert "ERROR: python_version '3.10' is not supported" in result.stderr
    assert list(output_dir.iterdir()) == []


# --- the validation functions, directly ---

GOOD_VALUES = [
    pytest.param(pre_gen.check_project_name, "My Service", id="name-plain"),
    pytest.param(pre_gen.check_project_name, "Café Zürich Ñandú", id="name-non-ascii"),
    pytest.param(pre_gen.check_project_name, "O'Brien's \"Quoted\" Service", id="name-quotes"),
    pytest.param(pre_gen.check_project_slug, "my-service", id="slug-plain"),
    pytest.param(pre_gen.check_project_slug, "a", id="slug-one-letter"),
    pytest.param(pre_gen.check_project_slug, "web2-api-3", id="slug-digits"),
    pytest.param(pre_gen.check_package_name, "my_service", id="package-plain"),
    pytest.param(pre_gen.check_package_name, "todo2", id="package-digit"),
    pytest.param(pre_gen.check_package_name, "flask_service", id="package-suggested"),
    pytest.param(pre_gen.check_author_name, "Renée O'Connor", id="author-apostrophe"),
    pytest.param(pre_gen.check_author_email, "you@example.com", id="email-plain"),
    pytest.param(pre_gen.check_author_email, "first.last+tag@mail.example.org", id="email-tag"),
    pytest.param(pre_gen.check_description, "", id="description-empty"),
    pytest.param(pre_gen.check_description, r"C:\path: \"quoted\" 'x'", id="description-marks"),
    pytest.param(pre_gen.check_version, "0.1.0", id="version-plain"),
    pytest.param(pre_gen.check_version, "1!2.0", id="version-epoch"),
    pytest.param(pre_gen.check_version, "1.0.0rc1", id="version-rc"),
    pytest.param(pre_gen.check_version, "1.0.post2.dev3", id="version-post-dev"),
    pytest.param(pre_gen.check_version, "2026.11", id="version-calendar"),
]

BAD_VALUES = [
    pytest.param(pre_gen.check_project_name, "", id="name-empty"),
    pytest.param(pre_gen.check_project_name, "Two\nLines", id="name-newline"),
    pytest.param(pre_gen.check_project_slug, "", id="slug-empty"),
    pytest.param(pre_gen.check_project_slug, "my_service", id="slug-underscore"),
    pytest.param(pre_gen.check_project_slug, "-service", id="slug-leading-hyphen"),
    pytest.param(pre_gen.check_project_slug, "café", id="slug-non-ascii"),
    pytest.param(pre_gen.check_package_name, "", id="package-empty"),
    pytest.param(pre_gen.check_package_name, "2fast", id="package-leading-digit"),
    pytest.param(pre_gen.check_package_name, "_private", id="package-leading-underscore"),
    pytest.param(pre_gen.check_package_name, "café", id="package-non-ascii"),
    pytest.param(pre_gen.check_package_name, "import", id="package-keyword"),
    pytest.param(pre_gen.check_package_name, "case", id="package-soft-keyword"),
    pytest.param(pre_gen.check_package_name, "json", id="package-stdlib"),
    pytest.param(pre_gen.check_package_name, "sqlalchemy", id="package-dependency"),
    pytest.param(pre_gen.check_package_name, "migrations", id="package-layout-name"),
    pytest.param(pre_gen.check_author_name, " ", id="author-blank"),
    pytest.param(pre_gen.check_author_name, "Ann\x00Lee", id="author-nul"),
    pytest.param(pre_gen.check_author_email, "a@b@example.com", id="email-two-at"),
    pytest.param(pre_gen.check_author_email, "you@.example.com", id="email-empty-label"),
    pytest.param(pre_gen.check_author_email, "you@example.", id="email-trailing-dot"),
    pytest.param(pre_gen.check_description, "one\r\ntwo", id="description-crlf"),
    pytest.param(pre_gen.check_description, "one\u2028two", id="description-line-separator"),
    pytest.param(pre_gen.check_version, "", id="version-empty"),
    pytest.param(pre_gen.check_version, "1.0-beta!", id="version-bang"),
    pytest.param(pre_gen.check_version, "1.0.0-rc.1", id="version-semver-pre"),
    pytest.param(pre_gen.check_version, "01.0", id="version-leading-zero"),
    pytest.param(pre_gen.check_version, "1.0+local", id="version-local"),
]


@pytest.mark.parametrize(("check", "value"), GOOD_VALUES)
def test_check_accepts(check: Any, value: str) -> None:
    check(value)


@pytest.mark.parametrize(("check", "value"), BAD_VALUES)
def test_check_refuses_naming_the_field(check: Any, value: str) -> None:
    field = check.__name__.removeprefix("check_")
    with pytest.raises(pre_gen.InvalidAnswerError) as refusal:
        check(value)
    assert refusal.value.field == field
    assert str(refusal.value).startswith(f"{field} ")
    assert "\n" not in str(refusal.value)


@pytest.mark.parametrize("name", OBSERVABILITY_MODULES)
def test_package_named_like_a_module_of_the_observability_option_is_refused(name: str) -> None:
    with pytest.raises(pre_gen.InvalidAnswerError, match=f"^package_name '{name}' shadows the "):
        pre_gen.check_package_name(name)


@pytest.mark.parametrize("name", ["class", "logging", "flask", "2fast", "My-Thing", ""])
def test_package_name_suggestion_is_itself_accepted(name: str) -> None:
    pre_gen.check_package_name(pre_gen._suggest_package_name(name))


@pytest.mark.parametrize("field", sorted({*pre_gen.SUPPORTED_CHOICES, *CHOICE_QUESTIONS}))
def test_hook_choices_are_those_of_cookiecutter_json(field: str) -> None:
    assert field in pre_gen.SUPPORTED_CHOICES, "add the new question to SUPPORTED_CHOICES"
    assert field in CHOICE_QUESTIONS, "the hook checks a question cookiecutter.json lacks"
    assert sorted(pre_gen.SUPPORTED_CHOICES[field]) == sorted(choices(field))


@pytest.mark.parametrize("field", sorted(pre_gen.SUPPORTED_CHOICES))
def test_check_choice_refuses_an_unknown_value(field: str) -> None:
    with pytest.raises(pre_gen.InvalidAnswerError, match=f"^{field} 'nope' is not supported"):
        pre_gen.check_choice(field, "nope")


def test_validate_accepts_the_defaults() -> None:
    pre_gen.validate(answers())


def test_main_prints_one_error_line_and_returns_one(capsys: pytest.CaptureFixture[str]) -> None:
    answers = {
        "project_name": "X",
        "project_slug": "x",
        "package_name": "class",
    }
    assert pre_gen.main(answers) == 1
    error_lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(error_lines) == 1
    assert error_lines[0].startswith("ERROR: package_name 'class' is a Python keyword")


# --- the hooks as cookiecutter renders them ---

AWKWARD_ANSWERS = {
    "project_name": "O'Brien's \"\"\"Triple\"\"\" '''Quoted''' Service \\",
    "author_name": "Renée O'Connor </script> & Ñandú",
    "description": "Ends in a backslash: C:\\temp\\",
}


def _answers_literal(rendered: str) -> Any:
    """Evaluate the JSON literal that the rendered hook hands to json.loads."""
    for node in ast.walk(ast.parse(rendered)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "loads"
        ):
            argument = node.args[0]
            assert isinstance(argument, ast.Constant)
            return json.loads(argument.value)
    raise AssertionError("the rendered hook has no json.loads(...) of the answers")


@pytest.mark.parametrize("hook", ["pre_gen_project", "post_gen_project"])
def test_rendered_hook_receives_awkward_answers_intact(hook: str) -> None:
    awkward = answers(**AWKWARD_ANSWERS)
    assert _answers_literal(render_hook(hook, awkward)) == awkward


def test_rendered_pre_gen_hook_accepts_awkward_but_valid_answers(tmp_path: Path) -> None:
    script = tmp_path / "pre_gen_project.py"
    script.write_text(render_hook("pre_gen_project", answers(**AWKWARD_ANSWERS)), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr


# --- the post-gen hook ---


def _license_tree(root: Path) -> None:
    """Lay out licenses/ as the template does before the post-gen hook runs."""
    (root / "licenses").mkdir(parents=True)
    for name in choices("license"):
        (root / "licenses" / f"{name}.txt").write_text(f"text of {name}\n", encoding="utf-8")


@pytest.mark.parametrize("license_name", choices("license"))
def test_install_license_moves_the_chosen_text(tmp_path: Path, license_name: str) -> None:
    _license_tree(tmp_path)
    post_gen.install_license({"license": license_name}, tmp_path)
    assert (tmp_path / "LICENSE").read_text(encoding="utf-8") == f"text of {license_name}\n"
    assert not (tmp_path / "licenses").exists()


def test_install_license_twice_keeps_the_first_result(tmp_path: Path) -> None:
    _license_tree(tmp_path)
    post_gen.install_license({"license": "MIT"}, tmp_path)
    post_gen.install_license({"license": "Apache-2.0"}, tmp_path)
    assert (tmp_path / "LICENSE").read_text(encoding="utf-8") == "text of MIT\n"


def test_install_license_without_texts_or_license_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(post_gen.PostGenError, match="bake the project again"):
        post_gen.install_license({"license": "MIT"}, tmp_path)


def test_every_license_choice_has_a_text_in_the_template() -> None:
    texts = TEMPLATE_DIR / "{{cookiecutter.project_slug}}" / "licenses"
    assert sorted(path.stem for path in texts.glob("*.txt")) == sorted(choices("license"))


def test_unchosen_paths_follow_the_table() -> None:
    table = (
        ("worker", ("celery",), ("src/{package_name}/worker.py", "tests/test_worker.py")),
        ("kubernetes", ("yes",), ("deploy/kubernetes",)),
    )
    answers = {"package_name": "shop", "worker": "none", "kubernetes": "yes"}
    assert post_gen.unchosen_paths(answers, table) == [
        Path("src/shop/worker.py"),
        Path("tests/test_worker.py"),
    ]
    assert post_gen.unchosen_paths({**answers, "worker": "celery"}, table) == []


def test_remove_paths_removes_files_and_directories_and_tolerates_missing(tmp_path: Path) -> None:
    (tmp_path / "deploy" / "kubernetes").mkdir(parents=True)
    (tmp_path / "deploy" / "kubernetes" / "web.yaml").write_text("kind: Deployment\n")
    (tmp_path / "worker.py").write_text("")
    (tmp_path / "kept.py").write_text("")
    paths = [Path("deploy/kubernetes"), Path("worker.py"), Path("never-there.txt")]
    post_gen.remove_paths(paths, tmp_path)
    post_gen.remove_paths(paths, tmp_path)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "deploy",
        "kept.py",
    ]


def test_next_steps_lists_the_commands_in_order() -> None:
    steps = post_gen.next_steps({"project_slug": "my-service"})
    commands = [
        "cd my-service",
        "make install",
        ".env",
        "make migrate",
        "make run",
        "make dev",
        "make test",
    ]
    positions = [steps.index(command) for command in commands]
    assert positions == sorted(positions)


def test_post_gen_hook_run_again_changes_nothing(cookies: Any, tmp_path: Path) -> None:
    result = cookies.bake(template=str(TEMPLATE_DIR), extra_context={"license": "BSD-3-Clause"})
    assert result.exception is None
    project = result.project_path
    after_first_run = tree_snapshot(project)
    script = tmp_path / "post_gen_project.py"
    script.write_text(render_hook("post_gen_project", dict(result.context)), encoding="utf-8")
    for _ in range(2):
        again = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, check=False, cwd=project
        )
        assert again.returncode == 0, again.stderr
        assert "make install" in again.stdout
        assert tree_snapshot(project) == after_first_run


# Each combination of the answers that change the dependencies, and the folder of its locks.
LOCK_FOLDERS = [
    pytest.param("none", "none", None, id="default"),
    pytest.param("celery", "none", "worker-celery", id="worker"),
    pytest.param("none", "opentelemetry", "observability-opentelemetry", id="observability"),
    pytest.param(
        "celery",
        "opentelemetry",
        "worker-celery+observability-opentelemetry",
        id="worker-and-observability",
    ),
]
LOCK_NAMES = ("requirements.lock", "requirements-dev.lock")


def _lock_tree(root: Path, *, missing: str = "") -> None:
    """Lay out the default locks and every variant's locks (but `missing`), as the template does."""
    for name in LOCK_NAMES:
        (root / name).write_text(f"default {name}\n", encoding="utf-8")
    for param in LOCK_FOLDERS:
        folder = param.values[2]
        if folder is None or folder == missing:
            continue
        (root / "locks" / folder).mkdir(parents=True)
        for name in LOCK_NAMES:
            (root / "locks" / folder / name).write_text(f"{folder} {name}\n", encoding="utf-8")


@pytest.mark.parametrize(("worker", "observability", "folder"), LOCK_FOLDERS)
def test_lock_folder_names_the_chosen_answers_in_question_order(
    worker: str, observability: str, folder: str | None
) -> None:
    chosen = {"worker": worker, "observability": observability, "license": "MIT"}
    assert post_gen.lock_folder(chosen) == folder


def test_lock_folder_of_unanswered_questions_is_the_default() -> None:
    assert post_gen.lock_folder({"license": "MIT"}) is None


def test_every_combination_of_dependency_answers_has_its_locks_in_the_template() -> None:
    variants = TEMPLATE_DIR / "{{cookiecutter.project_slug}}" / post_gen.LOCK_VARIANTS
    combinations = [{}]
    for question in post_gen.LOCK_QUESTIONS:
        combinations = [{**c, question: value} for c in combinations for value in choices(question)]
    wanted = {post_gen.lock_folder(c) for c in combinations} - {None}
    assert sorted(path.name for path in variants.iterdir()) == sorted(wanted)
    for folder in wanted:
        assert sorted(path.name for path in (variants / folder).iterdir()) == sorted(LOCK_NAMES)


@pytest.mark.parametrize(("worker", "observability", "folder"), LOCK_FOLDERS)
def test_install_locks_keeps_the_locks_of_the_chosen_answers(
    tmp_path: Path, worker: str, observability: str, folder: str | None
) -> None:
    _lock_tree(tmp_path)
    expected = folder or "default"
    for _ in range(2):
        post_gen.install_locks({"worker": worker, "observability": observability}, tmp_path)
        assert not (tmp_path / "locks").exists()
        for name in LOCK_NAMES:
            assert (tmp_path / name).read_text(encoding="utf-8") == f"{expected} {name}\n"


def test_install_locks_without_the_chosen_folder_fails_naming_it_and_moves_nothing(
    tmp_path: Path,
) -> None:
    missing = "worker-celery+observability-opentelemetry"
    _lock_tree(tmp_path, missing=missing)
    before = tree_snapshot(tmp_path)
    with pytest.raises(post_gen.PostGenError, match=re.escape(f"locks/{missing}/")):
        post_gen.install_locks({"worker": "celery", "observability": "opentelemetry"}, tmp_path)
    assert tree_snapshot(tmp_path) == before
