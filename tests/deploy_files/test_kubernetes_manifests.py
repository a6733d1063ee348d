"""The Kubernetes manifests: strict validation, the kustomize overlays, hardening, probes."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .baked_files import (
    TMPFS,
    WITH_KUBERNETES,
    WORKER_STOP_SECONDS,
    Baked,
    combinations_with,
    on,
    only_container,
    pod_spec,
)
from .validators import Validators, kubernetes_validate


def test_kubernetes_manifests_exist_only_when_chosen(baked: Baked) -> None:
    deploy = baked.path / "deploy"
    if baked.answers["kubernetes"] == "yes":
        assert (deploy / "kubernetes" / "base" / "kustomization.yaml").is_file()
        worker = deploy / "kubernetes" / "base" / "worker-deployment.yaml"
        assert worker.exists() == baked.celery
    else:
        assert not deploy.exists()


@on(WITH_KUBERNETES)
def test_kubernetes_manifests_pass_strict_validation(baked: Baked, validators: Validators) -> None:
    output = kubernetes_validate(validators, baked.kubernetes_files)
    assert output.count(" passed for resource ") == len(baked.resources)


@on(WITH_KUBERNETES)
def test_every_manifest_is_in_a_kustomization_and_every_entry_exists(baked: Baked) -> None:
    root = baked.path / "deploy" / "kubernetes"

    def listed(directory: Path) -> Iterator[Path]:
        kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
        for entry in kustomization.get("resources", []):
            target = (directory / entry).resolve()
            assert target.exists(), f"{directory / 'kustomization.yaml'} lists missing {entry}"
            if target.is_dir():
                yield from listed(target)
            else:
                yield target

    in_base = {*listed(root / "base"), *listed(root / "base" / "release")}
    assert in_base == {
        p.resolve() for p in (root / "base").rglob("*.yaml") if p.name != "kustomization.yaml"
    }
    assert (root / "secret.example.yaml").resolve() not in in_base


@on(WITH_KUBERNETES)
def test_kustomize_overlays_render_and_pass_strict_validation(
    baked: Baked, validators: Validators, tmp_path: Path
) -> None:
    root = baked.path / "deploy" / "kubernetes"
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip(
            "kubectl is not on PATH, so the kustomize overlays are not rendered; "
            "the base manifests are still validated file by file"
        )
    slug = baked.answers["project_slug"]
    rendered_files = []
    for overlay in ("overlays/example", "overlays/example/release"):
        rendered = validators.kustomize(kubectl, root / overlay, root)
        resources = list(yaml.safe_load_all(rendered))
        images = {
            c["image"]
            for r in resources
            if "template" in r.get("spec", {})
            for c in pod_spec(r)["containers"]
        }
        assert images == {f"registry.example.com/{slug}:{baked.answers['version']}"}
        path = tmp_path / (overlay.replace("/", "-") + ".yaml")
        path.write_text(rendered)
        rendered_files.append(path)
        kinds = sorted(r["kind"] for r in resources)
        if overlay.endswith("release"):
            assert kinds == ["ConfigMap", "Job"]
        else:
            assert "Job" not in kinds
            assert "Deployment" in kinds
    kubernetes_validate(validators, rendered_files)


@on(WITH_KUBERNETES)
def test_web_deployment_probes_and_drains(baked: Baked) -> None:
    deployment = baked.resource("Deployment", "-web")
    container = only_container(deployment)
    assert container["command"] == baked.procfile["web"]
    port = container["ports"][0]
    assert port == {"name": "http", "containerPort": int(baked.settings["PORT"])}
    probes = {
        kind: container[f"{kind}Probe"]["httpGet"] for kind in ("startup", "liveness", "readiness")
    }
    assert probes["liveness"]["path"] == "/healthz"
    assert {probe["port"] for probe in probes.values()} == {"http"}
    missing = {probe["path"] for probe in probes.values()} - baked.app_routes
    assert missing == set(), f"probe paths the app does not serve: {missing}"
    # The web process drains by itself on SIGTERM (/readyz 503 while it serves), so a
    # preStop pause would only add to the time a pod takes to stop.
    assert "lifecycle" not in container
    drain = int(baked.settings["DRAIN_SECONDS"])
    readiness = container["readinessProbe"]
    assert readiness["periodSeconds"] * readiness["failureThreshold"] < drain, (
        "the pod must fail its readiness probe, and leave the Service, within the drain"
    )
    assert "replicas" not in deployment["spec"], "the HorizontalPodAutoscaler owns replicas"


@on(WITH_KUBERNETES)
def test_web_rollout_starts_a_new_pod_before_it_stops_an_old_one(baked: Baked) -> None:
    strategy = baked.resource("Deployment", "-web")["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    rolling = strategy["rollingUpdate"]
    assert str(rolling["maxUnavailable"]) in {"0", "0%"}, "no old pod stops before a new one is up"
    assert str(rolling["maxSurge"]) not in {"0", "0%"}, "with none unavailable, one must surge"


@on(WITH_KUBERNETES)
def test_web_pods_get_traffic_only_while_readyz_answers(baked: Baked) -> None:
    container = only_container(baked.resource("Deployment", "-web"))
    readiness = container["readinessProbe"]["httpGet"]
    assert readiness["path"] == "/readyz"
    assert "/readyz" in baked.app_routes
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports[readiness["port"]] == int(baked.settings["PORT"])


@on(WITH_KUBERNETES)
def test_web_grace_period_covers_the_drain_and_the_graceful_timeout(baked: Baked) -> None:
    deployment = baked.resource("Deployment", "-web")
    env = {item["name"]: item["value"] for item in only_container(deployment).get("env", [])}
    stop_seconds = baked.stop_seconds({**baked.settings, **env})
    grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
    assert grace > stop_seconds, (
        f"terminationGracePeriodSeconds {grace} must outlast DRAIN_SECONDS + GRACEFUL_TIMEOUT "
        f"({stop_seconds}), or the kubelet kills requests in flight"
    )


def kustomized(directory: Path) -> list[tuple[str, str]]:
    """The (kind, name) of every resource a kustomization (or component) directory lists."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    found = []
    for entry in kustomization.get("resources", []) + kustomization.get("components", []):
        target = (directory / entry).resolve()
        if target.is_dir():
            found += kustomized(target)
        else:
            for resource in yaml.safe_load_all(target.read_text()):
                found.append((resource["kind"], resource["metadata"]["name"]))
    return found


@on(WITH_KUBERNETES)
def test_release_job_completes_before_the_new_web_deployment_is_applied(baked: Baked) -> None:
    slug = baked.answers["project_slug"]
    overlay = baked.path / "deploy" / "kubernetes" / "overlays" / "example"
    release_step = kustomized(overlay / "release")
    assert ("Job", f"{slug}-migrate") in release_step
    assert [kind for kind, _ in release_step if kind == "Deployment"] == []
    processes = kustomized(overlay)
    assert ("Deployment", f"{slug}-web") in processes
    assert [kind for kind, _ in processes if kind == "Job"] == [], (
        "applying the processes must not run the release again beside the new pods"
    )
    # The documented deploy: the release step, waited for, then the processes.
    commands = [
        " ".join(line.split("#")[0].split())
        for line in baked.text("README.md").splitlines()
        if line.startswith("kubectl ")
    ]
    steps = [
        "kubectl apply -k deploy/kubernetes/overlays/example/release",
        f"kubectl wait --for=condition=complete --timeout=10m job/{slug}-migrate",
        "kubectl apply -k deploy/kubernetes/overlays/example",
    ]
    assert all(step in commands for step in steps), commands
    assert [commands.index(step) for step in steps] == sorted(
        commands.index(step) for step in steps
    ), f"the README must deploy in this order: {steps}"


def _check_hardened(workload: dict[str, Any], uid: str) -> None:
    """Non-root with the image's UID, read-only root, a memory emptyDir at /tmp, limits."""
    spec = pod_spec(workload)
    container = only_container(workload)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert str(spec["securityContext"]["runAsUser"]) == uid
    assert spec["automountServiceAccountToken"] is False
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    assert volumes[mounts[TMPFS]]["emptyDir"]["medium"] == "Memory"
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) == {"cpu", "memory"}
    env_from = [
        source.get("configMapRef", source.get("secretRef"))["name"]
        for source in container["envFrom"]
    ]
    slug = workload["metadata"]["labels"]["app.kubernetes.io/name"]
    assert env_from == [f"{slug}-settings", f"{slug}-secrets"]


@on(WITH_KUBERNETES)
def test_every_workload_is_hardened_like_the_image(baked: Baked) -> None:
    uid = baked.dockerfile.runtime.all("USER")[-1].split(":")[0]
    workloads = [r for (kind, _), r in baked.resources.items() if kind in {"Deployment", "Job"}]
    assert len(workloads) == (3 if baked.celery else 2)
    for workload in workloads:
        _check_hardened(workload, uid)


@on(WITH_KUBERNETES)
def test_migration_job_runs_the_release_command(baked: Baked) -> None:
    job = baked.resource("Job", "-migrate")
    assert only_container(job)["command"] == baked.procfile["release"]
    assert pod_spec(job)["restartPolicy"] == "Never"


@on(combinations_with(kubernetes="yes", worker="celery"))
def test_worker_deployment_outlasts_the_task_time_limit(baked: Baked) -> None:
    worker = baked.resource("Deployment", "-worker")
    assert only_container(worker)["command"] == baked.procfile["worker"]
    soft_limit = int(baked.settings["TASK_SOFT_TIME_LIMIT"])
    time_limit = int(baked.settings["TASK_TIME_LIMIT"])
    assert soft_limit < time_limit
    grace = pod_spec(worker)["terminationGracePeriodSeconds"]
    assert grace > time_limit + WORKER_STOP_SECONDS


@on(WITH_KUBERNETES)
def test_service_autoscaler_and_budget_target_the_web_pods(baked: Baked) -> None:
    deployment = baked.resource("Deployment", "-web")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == pod_labels
    service = baked.resource("Service", "-web")
    assert service["spec"]["selector"] == pod_labels
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    hpa = baked.resource("HorizontalPodAutoscaler", "-web")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert 1 < hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    pdb = baked.resource("PodDisruptionBudget", "-web")
    assert pdb["spec"]["selector"]["matchLabels"] == pod_labels
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]


@on(WITH_KUBERNETES)
def test_configmap_and_secret_hold_every_setting_and_no_real_secret(baked: Baked) -> None:
    secret = baked.resource("Secret", "-secrets")
    required = {"DATABASE_URL", "SECRET_KEY", *(["REDIS_URL"] if baked.celery else [])}
    # Optional: no error reports until a DSN is set, so its placeholder is empty.
    optional = {"SENTRY_DSN"} if baked.observability else set()
    secret_names = required | optional
    assert set(secret["stringData"]) == secret_names
    assert all("replace-me" in secret["stringData"][name] for name in required)
    assert all(secret["stringData"][name] == "" for name in optional)
    assert "kubectl create secret generic" in baked.text("deploy/kubernetes/secret.example.yaml")
    plain = set(baked.env_example) - secret_names - {"RELEASE_ID"}
    # .env.example leaves METRICS_PORT commented out (GET /metrics on PORT, for local use);
    # the pods serve metrics on a port the Service does not publish.
    kubernetes_only = {"METRICS_PORT"} if baked.observability else set()
    assert set(baked.settings) == plain | kubernetes_only
    assert set(baked.settings) & secret_names == set()
