"""The container image's files: the Dockerfile (hadolint, then what it builds) and .dockerignore.

The image is also built and run on a real engine, in tests/test_container_image.py.
"""

from __future__ import annotations

import ast
import re
import shlex

from .baked_files import TMPFS, Baked, dockerignore_excludes
from .validators import Validators, require_pass

LOCAL_ONLY_PATHS = (
    ".env",
    ".flaskenv",
    ".git",
    ".venv",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
)


def test_dockerfile_passes_hadolint(
    baked: Baked, validators: Validators, hadolint: list[str]
) -> None:
    require_pass(validators.run(hadolint, [baked.path / "Dockerfile"]), "hadolint")
    text = baked.text("Dockerfile")
    for line in text.splitlines():
        ignored = re.search(r"hadolint ignore=(\S+)(.*)", line)
        if ignored:
            assert ignored.group(2).strip(" #-:"), f"ignored rule without a reason: {line}"


def test_image_builds_from_the_chosen_python(baked: Baked) -> None:
    dockerfile = baked.dockerfile
    python = baked.answers["python_version"]
    assert dockerfile.global_args["BASE_IMAGE"] == f"python:{python}-slim"
    assert [stage.base for stage in dockerfile.stages] == ["${BASE_IMAGE}"] * 2
    assert [stage.name for stage in dockerfile.stages] == ["builder", "runtime"]


def test_runtime_stage_gets_only_the_runtime_lock_and_the_wheel(baked: Baked) -> None:
    builder, runtime = baked.dockerfile.stages
    runs = " && ".join(builder.all("RUN"))
    # The build venv's pip installs into the runtime venv too (--python), which has no pip.
    installs = [
        (target or venv, arguments)
        for venv, target, arguments in re.findall(
            r"(/opt/\w+)/bin/pip (?:--python (/opt/\w+)/bin/python )?install ([^&]*)", runs
        )
    ]
    assert "python -m venv --without-pip /opt/venv" in runs
    into_runtime_venv = [arguments for venv, arguments in installs if venv == "/opt/venv"]
    # The runtime venv: the runtime lock, hash-checked and wheels only, then the wheel.
    assert "--require-hashes" in into_runtime_venv[0]
    assert "--only-binary=:all:" in into_runtime_venv[0]
    assert "--requirement requirements.lock" in into_runtime_venv[0]
    assert into_runtime_venv[1].split() == ["--no-deps", "/build/dist/*.whl"]
    assert len(into_runtime_venv) == 2
    # The build backend comes from the dev lock, into a venv the runtime never sees.
    for venv, arguments in installs:
        assert "--require-hashes" in arguments or "--no-deps" in arguments, arguments
        if "requirements-dev.lock" in arguments:
            assert venv != "/opt/venv"
    assert "pip wheel --no-deps --no-build-isolation" in runs
    assert not re.search(r"(^|\s)(-e|--editable)(\s|$)", runs)
    # From the build stage: the runtime venv and its SBOM, written from that venv.
    assert [c for c in runtime.all("COPY") if "--from" in c] == [
        "--from=builder /opt/venv /opt/venv",
        "--from=builder /build/sbom.cdx.json sbom.cdx.json",
    ]
    assert re.search(r"cyclonedx-py environment [^&]*/build/sbom\.cdx\.json /opt/venv\b", runs)
    every_run = " ".join(runs.split() + " ".join(runtime.all("RUN")).split())
    for compiler in ("gcc", "build-essential", "apk add"):
        assert compiler not in every_run
    # One Debian package, binutils (strip), and in the build stage alone.
    assert re.findall(r"apt-get install ([^&]*)", every_run) == [
        "--yes --no-install-recommends binutils "
    ]
    assert "apt-get" not in " ".join(runtime.all("RUN"))


def test_runtime_stage_runs_the_web_process_as_a_numeric_non_root_user(baked: Baked) -> None:
    runtime = baked.dockerfile.runtime
    user = runtime.all("USER")[-1]
    assert re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", user), f"USER {user} is not a numeric UID"
    env = runtime.env()
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["TMPDIR"] == TMPFS
    assert env["RELEASE_ID"] == "${RELEASE_ID}"
    assert "RELEASE_ID=unknown" in runtime.all("ARG")
    assert any("${RELEASE_ID}" in label for label in runtime.all("LABEL"))
    assert baked.dockerfile.exec_form("CMD") == baked.procfile["web"]


def test_healthcheck_asks_healthz_with_python_alone(baked: Baked) -> None:
    command = baked.dockerfile.exec_form("HEALTHCHECK")
    assert command[:2] == ["python", "-c"]
    code = command[2]
    ast.parse(code)
    assert "urllib.request" in code
    assert "'http://127.0.0.1:'" in code
    assert "os.environ.get('PORT', '8000')" in code
    assert "/healthz" in code
    assert "/healthz" in baked.app_routes
    assert not {"curl", "wget"} & set(" ".join(command).split())
    assert baked.dockerfile.runtime.all("EXPOSE") == ["8000"]


def test_dockerignore_keeps_local_files_out_and_what_the_image_copies_in(baked: Baked) -> None:
    rules = [
        line.strip()
        for line in baked.text(".dockerignore").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    package = baked.answers["package_name"]
    kept_out = [
        *LOCAL_ONLY_PATHS,
        ".env.production",
        "tests/test_api.py",
        f"src/{package}/__pycache__/config.cpython-312.pyc",
        "local.db",
        "backup.dump",
        "pgdata/PG_VERSION",
        *(["observability/prometheus.yml"] if baked.observability else []),
    ]
    assert [path for path in kept_out if not dockerignore_excludes(rules, path)] == []
    copied = []
    for stage in baked.dockerfile.stages:
        for arguments in stage.all("COPY"):
            if not arguments.startswith("--from"):
                copied += shlex.split(arguments)[:-1]
    assert "requirements.lock" in copied
    needed = [*copied, f"src/{package}/__init__.py", "migrations/env.py"]
    assert [path for path in needed if dockerignore_excludes(rules, path.rstrip("/"))] == []
