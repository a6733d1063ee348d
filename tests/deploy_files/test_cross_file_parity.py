"""Parity across files: one PostgreSQL, Python and Redis, the Procfile's commands everywhere."""

from __future__ import annotations

import re
import tomllib

from .baked_files import Baked, combinations_with, on, only_container


def test_one_postgres_version_in_compose_ci_and_readme(baked: Baked) -> None:
    version = baked.answers["postgres_version"]
    found = {"docker-compose.yml": {baked.compose["services"]["db"]["image"].split(":")[1]}}
    readme = baked.text("README.md")
    found["README.md"] = set(re.findall(r"\bPostgreSQL (\d+)\b", readme))
    if baked.answers["ci"] == "github":
        test = baked.yaml(".github/workflows/ci.yml")["jobs"]["test"]
        found["ci.yml"] = {test["services"]["db"]["image"].split(":")[1]}
    if baked.answers["ci"] == "gitlab":
        services = baked.yaml(".gitlab-ci.yml")["test"]["services"]
        found[".gitlab-ci.yml"] = {s["name"].split(":")[1] for s in services if s["alias"] == "db"}
    assert found == {where: {version} for where in found}


def test_one_python_version_in_dockerfile_ci_and_requires_python(baked: Baked) -> None:
    version = baked.answers["python_version"]
    requires_python = tomllib.loads(baked.text("pyproject.toml"))["project"]["requires-python"]
    base_image = baked.dockerfile.global_args["BASE_IMAGE"]
    found = {
        "Dockerfile": base_image.removeprefix("python:").removesuffix("-slim"),
        "requires-python": requires_python.removeprefix(">="),
    }
    if baked.answers["ci"] == "github":
        for name, job in baked.yaml(".github/workflows/ci.yml")["jobs"].items():
            for step in job["steps"]:
                if step.get("uses", "").startswith("actions/setup-python"):
                    found[f"ci.yml {name}"] = step["with"]["python-version"]
    if baked.answers["ci"] == "gitlab":
        found[".gitlab-ci.yml"] = baked.yaml(".gitlab-ci.yml")[".python"]["image"].removeprefix(
            "python:"
        )
    assert found == dict.fromkeys(found, version)


@on(combinations_with(worker="celery"))
def test_one_redis_image_in_compose_and_ci(baked: Baked) -> None:
    found = {"docker-compose.yml": baked.compose["services"]["redis"]["image"]}
    if baked.answers["ci"] == "github":
        test = baked.yaml(".github/workflows/ci.yml")["jobs"]["test"]
        found["ci.yml"] = test["services"]["redis"]["image"]
    if baked.answers["ci"] == "gitlab":
        services = baked.yaml(".gitlab-ci.yml")["test"]["services"]
        found[".gitlab-ci.yml"] = next(s["name"] for s in services if s["alias"] == "redis")
    assert len(set(found.values())) == 1, found


def test_process_commands_are_the_procfiles_everywhere(baked: Baked) -> None:
    services = baked.compose["services"]
    started = {
        "Dockerfile CMD": ("web", baked.dockerfile.exec_form("CMD")),
        "compose web": ("web", services["web"]["command"]),
        "compose migrate": ("release", services["migrate"]["command"]),
    }
    if baked.celery:
        started["compose worker"] = ("worker", services["worker"]["command"])
    if baked.answers["kubernetes"] == "yes":
        started["Deployment web"] = (
            "web",
            only_container(baked.resource("Deployment", "-web"))["command"],
        )
        started["Job migrate"] = (
            "release",
            only_container(baked.resource("Job", "-migrate"))["command"],
        )
        if baked.celery:
            worker = baked.resource("Deployment", "-worker")
            started["Deployment worker"] = ("worker", only_container(worker)["command"])
    differing = {
        where: command
        for where, (process, command) in started.items()
        if command != baked.procfile[process]
    }
    assert differing == {}, f"Procfile: {baked.procfile}"
    assert set(baked.procfile) == {"web", "release", *(["worker"] if baked.celery else [])}


def test_every_test_file_the_readme_names_exists(baked: Baked) -> None:
    named = set(re.findall(r"`(tests/[\w/.-]+\.py)`", baked.text("README.md")))
    assert len(named) > 10
    assert sorted(path for path in named if not (baked.path / path).is_file()) == []
