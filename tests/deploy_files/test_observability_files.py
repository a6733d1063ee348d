"""The observability option in the deploy files: its settings documented and set, compose's
optional Prometheus, the pods' scrape annotations, CI's Prometheus; and, without the option,
no trace of it anywhere in the project.
"""

from __future__ import annotations

import ast
import re
import shutil
from typing import Any

import pytest

from .baked_files import (
    WITH_GITHUB,
    WITH_GITLAB,
    WITH_KUBERNETES,
    WITH_OBSERVABILITY,
    WITHOUT_OBSERVABILITY,
    Baked,
    combinations_with,
    on,
    only_container,
)
from .validators import Validators, require_pass

# The scrape configuration that compose's prometheus service reads; kept at the project root,
# since deploy/ goes with the Kubernetes manifests.
PROMETHEUS_CONFIG = "observability/prometheus.yml"
PROMETHEUS_PROFILE = "observability"
# A Prometheus image pinned to a release, e.g. prom/prometheus:v2.53.5; never `latest`.
PINNED_PROMETHEUS = re.compile(r"prom/prometheus:v\d+\.\d+\.\d+")
# The option's tools by name, and its route. The lookbehind spares words such as "hotel".
OPTION_WORDS = re.compile(r"(?<![a-z])otel|opentelemetry|prometheus|sentry|/metrics\b", re.I)
# The variables of the option share these prefixes, so a misspelt one is caught.
OPTION_PREFIXES = ("OTEL_", "METRICS_", "PROMETHEUS_", "SENTRY_")


def observability_variables(baked: Baked) -> set[str]:
    """The variables ObservabilitySettings reads, from its source: each field's name in
    capitals, and the _FILE form of each secret."""
    source = baked.path / "src" / baked.answers["package_name"] / "observability" / "settings.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    settings = next(
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and node.name == "ObservabilitySettings"
    )
    variables: set[str] = set()
    for node in settings.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            variables.add(node.target.id.upper())
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "secret_variables":
            variables.update(f"{name}_FILE" for name in ast.literal_eval(node.value))
    assert len(variables) > 10, f"ObservabilitySettings was not read right: {variables}"
    return variables


def documented_in_env_example(baked: Baked) -> set[str]:
    """The names .env.example sets or shows commented out (`# NAME=value`)."""
    names = set()
    for line in baked.text(".env.example").splitlines():
        match = re.fullmatch(r"#?\s*([A-Z][A-Z0-9_]*)=.*", line)
        if match:
            names.add(match.group(1))
    return names


def option_names(names: Any) -> set[str]:
    """The names among these that belong to the option, by their prefix."""
    return {name for name in names if str(name).startswith(OPTION_PREFIXES)}


def test_the_prometheus_config_exists_only_with_the_option(baked: Baked) -> None:
    assert (baked.path / PROMETHEUS_CONFIG).is_file() == baked.observability, (
        f"{PROMETHEUS_CONFIG} belongs to observability=opentelemetry: "
        "the post-gen hook's OPTIONAL_PATHS removes it otherwise"
    )


@on(WITHOUT_OBSERVABILITY)
def test_a_project_without_the_option_names_none_of_its_tools(baked: Baked) -> None:
    offenders = {}
    for path in sorted(p for p in baked.path.rglob("*") if p.is_file()):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        found = sorted({match.group(0).lower() for match in OPTION_WORDS.finditer(text)})
        if found:
            offenders[str(path.relative_to(baked.path))] = found
    assert offenders == {}


@on(WITH_OBSERVABILITY)
def test_every_variable_of_the_option_is_documented_and_none_is_misspelt(baked: Baked) -> None:
    variables = observability_variables(baked)
    env_example = documented_in_env_example(baked)
    assert variables - {"SENTRY_DSN_FILE"} - env_example == set()
    assert "SENTRY_DSN_FILE" in baked.text(".env.example")
    readme = baked.text("README.md")
    assert "## Observability" in readme
    assert {name for name in variables if f"`{name}`" not in readme} == set()
    # Every such name the deploy files set is one the service reads.
    set_by = {
        ".env.example": option_names(env_example),
        "docker-compose.yml": option_names(baked.compose["services"]["web"]["environment"]),
    }
    if baked.answers["kubernetes"] == "yes":
        set_by["ConfigMap"] = option_names(baked.settings)
        set_by["Secret"] = option_names(baked.resource("Secret", "-secrets")["stringData"])
    unknown = {where: names - variables for where, names in set_by.items() if names - variables}
    assert unknown == {}


@on(WITH_OBSERVABILITY)
def test_compose_runs_prometheus_only_under_its_profile_from_a_pinned_image(
    baked: Baked,
) -> None:
    services = baked.compose["services"]
    prometheus = services["prometheus"]
    assert prometheus["profiles"] == [PROMETHEUS_PROFILE]
    assert [name for name, service in services.items() if "profiles" in service] == [
        "prometheus"
    ], "`docker compose up` without the profile starts the service as before"
    assert PINNED_PROMETHEUS.fullmatch(prometheus["image"]), prometheus["image"]
    mounts = dict(volume.split(":", 1) for volume in prometheus["volumes"])
    assert mounts[f"./{PROMETHEUS_CONFIG}"] == "/etc/prometheus/prometheus.yml:ro"
    assert (baked.path / PROMETHEUS_CONFIG).is_file()
    assert all(str(port).startswith("127.0.0.1:") for port in prometheus["ports"])


@on(WITH_OBSERVABILITY)
def test_compose_prometheus_scrapes_every_process_on_its_metrics_port(baked: Baked) -> None:
    services = baked.compose["services"]
    processes = ["web", *(["worker"] if baked.celery else [])]
    ports = {name: services[name]["environment"]["METRICS_PORT"] for name in processes}
    port = ports["web"]
    assert ports == dict.fromkeys(processes, port)
    assert int(port) != int(baked.env_example["PORT"])
    scraped = {}
    for job in baked.yaml(PROMETHEUS_CONFIG)["scrape_configs"]:
        (lookup,) = job["dns_sd_configs"]
        scraped[job["job_name"]] = (lookup["names"], lookup["type"], lookup["port"])
    assert scraped == {name: ([name], "A", int(port)) for name in processes}
    # Nothing leaves the stack unless .env or the shell names where it goes.
    environment = services["web"]["environment"]
    assert environment["OTEL_EXPORTER_OTLP_ENDPOINT"] == "${OTEL_EXPORTER_OTLP_ENDPOINT:-}"
    assert environment["SENTRY_DSN"] == "${SENTRY_DSN:-}"
    slug = baked.answers["project_slug"]
    assert environment["OTEL_SERVICE_NAME"] == f"${{OTEL_SERVICE_NAME:-{slug}}}"


@on(WITH_OBSERVABILITY)
def test_the_prometheus_config_passes_promtool(baked: Baked, validators: Validators) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip(
            f"promtool is not on PATH (Debian's prometheus package has it), so {PROMETHEUS_CONFIG} "
            "is checked for its structure only"
        )
    result = validators.run([promtool, "check", "config"], [baked.path / PROMETHEUS_CONFIG])
    require_pass(result, f"promtool check config {PROMETHEUS_CONFIG}")


@on(WITH_KUBERNETES)
def test_pods_carry_scrape_annotations_only_with_the_option(baked: Baked) -> None:
    workloads = ["-web", *(["-worker"] if baked.celery else [])]
    for suffix in workloads:
        deployment = baked.resource("Deployment", suffix)
        annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
        ports = only_container(deployment).get("ports", [])
        metrics_ports = [port for port in ports if port["name"] == "metrics"]
        if not baked.observability:
            assert (annotations, metrics_ports) == ({}, []), suffix
            continue
        port = baked.settings["METRICS_PORT"]
        assert annotations == {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": port,
            "prometheus.io/path": "/metrics",
        }, suffix
        assert metrics_ports == [{"name": "metrics", "containerPort": int(port)}], suffix
    job = baked.resource("Job", "-migrate")
    assert "annotations" not in job["spec"]["template"]["metadata"]
    if baked.observability:
        assert "/metrics" in baked.app_routes
        service = baked.resource("Service", "-web")
        assert [port["targetPort"] for port in service["spec"]["ports"]] == ["http"], (
            "the metrics port stays out of the Service, so no ingress publishes it"
        )


@on(combinations_with(kubernetes="yes", observability="opentelemetry"))
def test_configmap_sends_nothing_until_told_and_keeps_the_dsn_out(baked: Baked) -> None:
    assert baked.settings["OTEL_EXPORTER_OTLP_ENDPOINT"] == ""
    assert baked.settings["OTEL_SERVICE_NAME"] == baked.answers["project_slug"]
    assert baked.settings["METRICS_ENABLED"] == "true"
    assert "SENTRY_DSN" not in baked.settings
    secret_example = baked.text("deploy/kubernetes/secret.example.yaml")
    assert "--from-literal=SENTRY_DSN=" in secret_example
    assert "--from-literal=SENTRY_DSN=" in baked.text("README.md")


def _installs_prometheus(commands: list[str]) -> bool:
    """Whether these shell lines install Debian's prometheus package."""
    return any(re.search(r"apt-get install\b.*\bprometheus\b", command) for command in commands)


@on(WITH_GITHUB)
def test_github_ci_tests_with_a_real_prometheus_only_with_the_option(baked: Baked) -> None:
    test = baked.yaml(".github/workflows/ci.yml")["jobs"]["test"]
    runs = [step.get("run", "") for step in test["steps"]]
    if not baked.observability:
        assert "TEST_REQUIRE_PROMETHEUS" not in test["env"]
        assert not _installs_prometheus(runs)
        return
    assert test["env"]["TEST_REQUIRE_PROMETHEUS"] == "1"
    install = next(i for i, run in enumerate(runs) if _installs_prometheus(run.splitlines()))
    assert install < runs.index("make test")


@on(WITH_GITLAB)
def test_gitlab_ci_tests_with_a_real_prometheus_only_with_the_option(baked: Baked) -> None:
    pipeline = baked.yaml(".gitlab-ci.yml")
    test = pipeline["test"]
    if not baked.observability:
        assert "TEST_REQUIRE_PROMETHEUS" not in test["variables"]
        assert "before_script" not in test
        return
    assert test["variables"]["TEST_REQUIRE_PROMETHEUS"] == "1"
    assert _installs_prometheus(test["before_script"])
    # A job's own before_script replaces the one it extends: uv must still be installed.
    uv = [line for line in pipeline[".python"]["before_script"] if "uv" in line]
    assert uv
    assert set(uv) <= set(test["before_script"])
