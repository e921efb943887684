"""The Kubernetes manifests (``deploy/kubernetes/``, kustomize), checked without a cluster.

Every manifest validates against the Kubernetes schemas (``kubernetes-validate`` ships
them) of the oldest supported and the newest version; the kustomization names every
manifest; no Secret is written down, only referenced; the probes and commands point at
what the app has.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from fastapi_server.config import Settings
from fastapi_server.main import create_app
from fastapi_server.tests.helpers.processes import REPO_ROOT

MANIFESTS = REPO_ROOT / "deploy" / "kubernetes"
# 1.30: the oldest with the preStop "sleep" action on by default.
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())


@cache
def resources() -> list[tuple[str, dict[str, Any]]]:
    """(file name, resource) for every document of every manifest."""
    found = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            found += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def resource(kind: str, name: str) -> dict[str, Any]:
    return next(r for _, r in resources() if (r["kind"], r["metadata"]["name"]) == (kind, name))


def pod_spec(kind: str, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = resource(kind, name)["spec"]["template"]["spec"]
    return spec


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_validates_against_the_kubernetes_schemas(version: str) -> None:
    errors = []
    for name, doc in resources():
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{name} {doc['kind']}/{doc['metadata']['name']}: {exc.message}")
    assert errors == []


def test_the_kustomization_names_every_manifest() -> None:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    files = {path.name for path in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


def test_the_parts_of_the_deployment_are_all_there() -> None:
    kinds = {(doc["kind"], doc["metadata"]["name"]) for _, doc in resources()}
    assert {
        ("Deployment", "api"),
        ("Deployment", "worker"),
        ("Deployment", "pgbouncer"),
        ("Job", "migrate"),
        ("Service", "api"),
        ("Service", "pgbouncer"),
        ("HorizontalPodAutoscaler", "api"),
        ("PodDisruptionBudget", "api"),
    } <= kinds


def test_secrets_are_referenced_never_written_down() -> None:
    assert not [doc for _, doc in resources() if doc["kind"] == "Secret"]
    for kind, name in (("Deployment", "api"), ("Deployment", "worker"), ("Job", "migrate")):
        sources = pod_spec(kind, name)["containers"][0]["envFrom"]
        assert {"secretRef": {"name": "app-secrets"}} in sources, name
    config = resource("ConfigMap", "app-config")["data"]
    secret_names = {"DATABASE_URL", "DATABASE_LISTEN_URL"}
    assert not secret_names & set(config)
    assert not [key for key in config if key.endswith(("_SECRET", "_PASSWORD"))]


def test_the_config_names_real_settings_and_pools_through_pgbouncer() -> None:
    config = resource("ConfigMap", "app-config")["data"]
    assert config["DB_PGBOUNCER"] == "true"
    assert float(config["SHUTDOWN_DRAIN_SECONDS"]) > 0
    ini = resource("ConfigMap", "pgbouncer-config")["data"]["pgbouncer.ini"]
    assert "pool_mode = transaction" in ini
    known = {name.upper() for name in Settings.model_fields}
    platform = {key for key in config if not key.startswith(("NOTIFICATIONS_", "USERS_"))}
    assert platform - {"WEB_CONCURRENCY"} <= known


def test_api_probes_point_at_the_health_endpoints_and_the_drain_outlasts_them() -> None:
    paths = set(create_app(Settings(env="test")).openapi()["paths"])
    api = pod_spec("Deployment", "api")
    container = api["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/_ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/_status"
    assert {"/_ready", "/_status"} <= paths
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = float(resource("ConfigMap", "app-config")["data"]["SHUTDOWN_DRAIN_SECONDS"])
    # preStop, then the drain, then requests in flight: all within the grace period.
    assert pre_stop + drain + 10 <= api["terminationGracePeriodSeconds"]
    hpa = resource("HorizontalPodAutoscaler", "api")["spec"]
    assert hpa["scaleTargetRef"]["name"] == "api"
    assert hpa["minReplicas"] >= 2


def test_the_worker_and_the_job_run_modules_that_exist() -> None:
    for kind, name in (("Deployment", "worker"), ("Job", "migrate")):
        command = pod_spec(kind, name)["containers"][0]["command"]
        assert command[:2] == ["python", "-m"]
        module = REPO_ROOT.joinpath(*command[2].split("."))
        assert module.with_suffix(".py").is_file(), command
