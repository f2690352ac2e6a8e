"""The Kubernetes manifests (``deploy/kubernetes``), checked without a cluster: the built-in kinds
against the Kubernetes API's own JSON schemas (``kubernetes-validate``, strict: an unknown or
misspelt field fails), the settings against the service's, and the numbers that must agree
across files (the drain and the grace period, replicas and the rate-limit share, names the
Cassandra operator makes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from mnist_api.kernel.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "kubernetes"
KUBERNETES = "1.30.0"  # the oldest with preStop's sleep action
Manifest = dict[str, Any]


def load(name: str) -> Manifest:
    loaded = yaml.safe_load((K8S / name).read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), name
    return loaded


def resources() -> list[str]:
    listed: list[str] = load("kustomization.yaml")["resources"]
    return listed


def of_kind(kind: str) -> Manifest:
    found = [m for m in map(load, resources()) if m["kind"] == kind]
    assert len(found) == 1, kind
    return found[0]


def container(workload: Manifest) -> Manifest:
    containers: list[Manifest] = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def settings_values() -> dict[str, str]:
    data: dict[str, str] = of_kind("ConfigMap")["data"]
    return data


def test_the_kustomization_lists_every_manifest() -> None:
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(resources()) == sorted(present)


@pytest.mark.parametrize("name", [n for n in resources() if n != "cassandra-datacenter.yaml"])
def test_built_in_kinds_follow_the_kubernetes_schema(name: str) -> None:
    try:
        kubernetes_validate.validate(load(name), KUBERNETES, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{name}: {exc.message} at {'.'.join(map(str, exc.path))}")


def test_settings_are_the_services_and_valid() -> None:
    values = settings_values()
    known = {"MNIST_API_" + field.upper(): field for field in Settings.model_fields}
    unknown = sorted(set(values) - set(known))
    assert not unknown, f"not settings of mnist_api: {unknown}"
    secret = {"cassandra_username": "u", "cassandra_password": "p"}
    settings = load_settings(**{known[k]: v for k, v in values.items()}, **secret)
    assert settings.store == "cassandra"
    assert settings.auth == "required"


def test_cassandra_is_the_operators() -> None:
    """The contact point, data centre and secret are the names cass-operator gives them."""
    dc = of_kind("CassandraDatacenter")
    assert dc["apiVersion"] == "cassandra.datastax.com/v1beta1"
    spec = dc["spec"]
    for required in ("clusterName", "serverType", "serverVersion", "size", "storageConfig"):
        assert required in spec
    assert spec["serverType"] == "cassandra"
    assert spec["serverVersion"].startswith("5.0.")
    cluster, name = spec["clusterName"], dc["metadata"]["name"]
    values = settings_values()
    assert values["MNIST_API_CASSANDRA_CONTACT_POINTS"] == f"{cluster}-{name}-service"
    assert values["MNIST_API_CASSANDRA_LOCAL_DC"] == name
    replicas = int(values["MNIST_API_CASSANDRA_REPLICATION"].split(f"{name}=")[1])
    assert replicas == spec["size"] == 3
    assert values["MNIST_API_CASSANDRA_CONSISTENCY"] == "LOCAL_QUORUM"
    for workload in (of_kind("Deployment"), of_kind("Job")):
        refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in container(workload)["env"]}
        assert refs == {f"{cluster}-superuser"}


def test_probes_and_the_grace_period_match_the_drain() -> None:
    pod = of_kind("Deployment")["spec"]["template"]["spec"]
    api = container(of_kind("Deployment"))
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["readinessProbe"]["failureThreshold"] == 1
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["startupProbe"]["httpGet"]["path"] == "/healthz"
    values = settings_values()
    pre_stop = api["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = float(values["MNIST_API_GRACE_PERIOD_S"])
    assert float(values["MNIST_API_DRAIN_DELAY_S"]) < grace
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + grace + 5
    assert api["ports"][0]["containerPort"] == Settings.model_fields["port"].default


def test_replicas_share_and_budget_agree() -> None:
    deployment, hpa, pdb = (
        of_kind("Deployment"),
        of_kind("HorizontalPodAutoscaler"),
        of_kind("PodDisruptionBudget"),
    )
    replicas = deployment["spec"]["replicas"]
    assert replicas == hpa["spec"]["minReplicas"] == int(settings_values()["MNIST_API_INSTANCES"])
    assert replicas >= 2, "one pod must serve while another restarts"
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert pdb["spec"]["maxUnavailable"] == 1
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    for selector in (
        deployment["spec"]["selector"]["matchLabels"],
        pdb["spec"]["selector"]["matchLabels"],
        of_kind("Service")["spec"]["selector"],
    ):
        assert selector.items() <= labels.items()


def test_the_migration_job_upgrades_with_the_same_image_and_settings() -> None:
    job, api = container(of_kind("Job")), container(of_kind("Deployment"))
    assert job["command"] == ["mnist-api", "db", "upgrade"]
    assert job["image"] == api["image"]
    assert job["envFrom"] == api["envFrom"]
    assert job["env"] == api["env"]
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    assert api["image"] == compose["services"]["api"]["image"]
