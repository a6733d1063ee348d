"""Config in the environment: checked at start, one line per problem, secrets never shown."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ..environments import TEST_SECRET_KEY, required_environment, service_environment
from ..http_client import http_get
from ..processes import PROJECT_ROOT, run_process, web_process

REQUIRED = sorted(required_environment("postgresql://unused"))
PACKAGE = PROJECT_ROOT / "src" / "{{ cookiecutter.package_name }}"


@pytest.mark.processes
@pytest.mark.parametrize("variable", REQUIRED)
@pytest.mark.parametrize("problem", ["missing", "malformed"])
def test_a_missing_or_malformed_required_variable_stops_the_process_naming_it(
    database_url: str, variable: str, problem: str
) -> None:
    environment = service_environment(database_url)
    if problem == "missing":
        del environment[variable]
    else:
        environment[variable] = "x"
    result = run_process("web", environment)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert TEST_SECRET_KEY not in result.stdout + result.stderr


@pytest.mark.processes
def test_secrets_can_come_from_mounted_files(database_url: str, tmp_path: Path) -> None:
    secret_file = tmp_path / "secret_key"
    secret_file.write_text("a-secret-mounted-from-a-file\n")
    environment = service_environment(
        database_url, SECRET_KEY_FILE=str(secret_file), WEB_CONCURRENCY="1"
    )
    del environment["SECRET_KEY"]
    with web_process(environment, tmp_path) as service:
        assert http_get(f"{service.base_url}/readyz")[0] == 200
    output = service.stdout_path.read_text() + service.stderr_path.read_text()
    assert "a-secret-mounted-from-a-file" not in output


def test_dotenv_is_git_ignored() -> None:
    ignored = (PROJECT_ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in ignored


def test_only_config_py_reads_the_environment_and_it_has_no_per_environment_classes() -> None:
    for path in PACKAGE.rglob("*.py"):
        source = path.read_text()
        if path.name != "config.py":
            assert "os.environ" not in source, path.name
            assert "getenv" not in source, path.name
    tree = ast.parse((PACKAGE / "config.py").read_text())
    classes = [node.name for node in tree.body if isinstance(node, ast.ClassDef)]
    for stage in ("Development", "Production", "Testing", "Staging", "Local"):
        assert not any(stage in name for name in classes), classes
