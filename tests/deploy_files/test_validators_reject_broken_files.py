"""The validators do reject broken files: each is fed one, to show it can refuse it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .baked_files import Baked, Bakery
from .validators import (
    KUBERNETES_VERSION,
    Validators,
    check_jsonschema,
    kubernetes_validate,
    tool,
    zizmor,
)


def test_hadolint_rejects_a_dockerfile_with_an_unpinned_apt_install(
    default_bake: Baked, tmp_path: Path, hadolint: list[str]
) -> None:
    broken = tmp_path / "Dockerfile"
    text = default_bake.text("Dockerfile")
    broken.write_text(
        text.replace("USER 10001:10001", "RUN apt-get update && apt-get install -y curl\nUSER app")
    )
    result = subprocess.run(
        [*hadolint, str(broken)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "DL3008" in result.stdout  # apt-get install without pinned versions
    assert "DL3015" in result.stdout  # ... and without --no-install-recommends


def test_compose_spec_rejects_an_unknown_service_key(default_bake: Baked, tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    text = default_bake.text("docker-compose.yml")
    broken.write_text(text.replace("    stop_grace_period: 30s", "    stop_grace: 30s", 1))
    result = check_jsonschema("vendor.compose-spec", broken)
    assert result.returncode != 0
    assert "'stop_grace' was unexpected" in result.stdout


def test_kubernetes_validate_rejects_an_unknown_field_only_when_strict(
    default_bake: Baked, tmp_path: Path
) -> None:
    broken = tmp_path / "web-deployment.yaml"
    text = default_bake.text("deploy/kubernetes/base/web-deployment.yaml")
    broken.write_text(text.replace("          readinessProbe:", "          readynessProbe:"))
    command = [tool("kubernetes-validate"), "-k", KUBERNETES_VERSION]
    lenient = subprocess.run([*command, str(broken)], capture_output=True, text=True, check=False)
    assert lenient.returncode == 0, "without --strict an unknown field passes unseen"
    strict = subprocess.run(
        [*command, "--strict", str(broken)], capture_output=True, text=True, check=False
    )
    assert strict.returncode != 0
    assert "readynessProbe" in strict.stdout


def test_kubernetes_validate_catches_an_api_version_without_a_schema(
    default_bake: Baked, tmp_path: Path, validators: Validators
) -> None:
    broken = tmp_path / "web-hpa.yaml"
    text = default_bake.text("deploy/kubernetes/base/web-hpa.yaml")
    broken.write_text(text.replace("autoscaling/v2", "autoscaling/v3"))
    with pytest.raises(pytest.fail.Exception, match="Couldn't find schema"):
        kubernetes_validate(validators, [broken])


def test_github_workflows_schema_rejects_a_job_without_runs_on(
    default_bake: Baked, tmp_path: Path
) -> None:
    broken = tmp_path / "ci.yml"
    text = default_bake.text(".github/workflows/ci.yml")
    broken.write_text(
        text.replace("    runs-on: ubuntu-latest\n", "    runs_on: ubuntu-latest\n", 1)
    )
    result = check_jsonschema("vendor.github-workflows", broken)
    assert result.returncode != 0
    assert "$.jobs.lint" in result.stdout


def test_zizmor_rejects_a_tag_a_kept_token_and_an_event_field_in_a_script(
    default_bake: Baked, tmp_path: Path
) -> None:
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    broken = workflows / "ci.yml"
    text = default_bake.text(".github/workflows/ci.yml")
    unpinned = re.sub(r"(actions/setup-python)@[0-9a-f]{40}", r"\1@v6", text, count=1)
    kept_token = unpinned.replace("        with:\n          persist-credentials: false\n", "", 1)
    injected = kept_token.replace(
        "      - run: make lint\n",
        '      - run: make lint\n      - run: echo "${{ github.event.pull_request.title }}"\n',
    )
    assert injected.count("${{") == 1
    broken.write_text(injected)
    result = subprocess.run([*zizmor(), str(broken)], capture_output=True, text=True, check=False)
    assert result.returncode != 0
    for audit in ("unpinned-uses", "artipacked", "template-injection"):
        assert f"[{audit}]" in result.stdout, audit


def test_gitlab_ci_schema_rejects_a_misspelt_keyword(bakery: Bakery, tmp_path: Path) -> None:
    broken = tmp_path / ".gitlab-ci.yml"
    text = bakery({"ci": "gitlab"}).text(".gitlab-ci.yml")
    broken.write_text(text.replace("  script:\n    - make lint", "  scripts:\n    - make lint"))
    result = check_jsonschema("vendor.gitlab-ci", broken)
    assert result.returncode != 0
    assert "'scripts' was unexpected" in result.stdout


def test_dependabot_schema_rejects_a_misspelt_option(default_bake: Baked, tmp_path: Path) -> None:
    broken = tmp_path / "dependabot.yml"
    text = default_bake.text(".github/dependabot.yml")
    broken.write_text(text.replace("    cooldown:\n", "    cool-down:\n", 1))
    result = check_jsonschema("vendor.dependabot", broken)
    assert result.returncode != 0
    assert "'cool-down' was unexpected" in result.stdout


def test_renovate_schema_rejects_a_release_age_without_its_unit(
    bakery: Bakery, tmp_path: Path
) -> None:
    broken = tmp_path / "renovate.json"
    text = bakery({"ci": "gitlab"}).text("renovate.json")
    broken.write_text(text.replace('"minimumReleaseAge": "7 days"', '"minimumReleaseAge": 7'))
    result = check_jsonschema("vendor.renovate", broken)
    assert result.returncode != 0
    assert "$.minimumReleaseAge: 7 is not of type" in result.stdout


def test_promtool_rejects_a_misspelt_scrape_setting(bakery: Bakery, tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not on PATH (Debian's prometheus package has it)")
    answers = {"observability": "opentelemetry", "ci": "github", "worker": "celery"}
    text = bakery(answers).text("observability/prometheus.yml")
    broken = tmp_path / "prometheus.yml"
    broken.write_text(text.replace("dns_sd_configs:", "dns_sd_config:", 1))
    result = subprocess.run(
        [promtool, "check", "config", str(broken)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "dns_sd_config" in result.stdout + result.stderr
