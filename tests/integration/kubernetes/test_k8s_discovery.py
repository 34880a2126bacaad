"""Inventory discovery through the client: GFD node labels + the inventory ConfigMap."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("kubernetes", reason="the [kubernetes] extra is not installed")
import yaml
from fake_apiserver import FakeApiServer, Fault
from k8s_testkit import write_kubeconfig
from kubernetes import client

from airflow_fate.errors import InputError
from airflow_fate.executor.settings import load_settings
from airflow_fate.launch.backends import build_backend
from airflow_fate.launch.kubernetes.api import ApiCaller, KubernetesApiError
from airflow_fate.launch.kubernetes.discovery import discover_inventory
from airflow_fate.launch.kubernetes.settings import RetrySettings

INTERCONNECT = {
    "host_to_gpu_gbps": 25,
    "nvlink_gbps": 300,
    "local_disk_gbps": 3,
    "remote_store_gbps": 1.25,
}


def _seed(apiserver: FakeApiServer) -> None:
    for name, count in (("h100-a", 2), ("cpu-1", 0)):
        labels = {"kubernetes.io/hostname": name}
        if count:
            labels |= {
                "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
                "nvidia.com/gpu.memory": "81559",
                "nvidia.com/gpu.count": str(count),
            }
        apiserver.create("nodes", {"metadata": {"name": name, "labels": labels}})
    devices = {
        "version": 1,
        "nodes": {
            "h100-a": [
                {"index": 0, "uuid": "GPU-aaaa", "pci_bus_id": "00000000:18:00.0"},
                {"index": 1, "uuid": "GPU-bbbb", "pci_bus_id": "00000000:2a:00.0"},
            ]
        },
    }
    defaults = {"interconnect": INTERCONNECT, "nodes": {"h100-a": {"nvlink": True}}}
    apiserver.create(
        "configmaps",
        {
            "metadata": {"name": "airflow-fate-inventory", "namespace": "airflow-fate"},
            "data": {
                "devices.yaml": yaml.safe_dump(devices),
                "cluster.yaml": yaml.safe_dump(defaults),
            },
        },
    )


def _caller() -> ApiCaller:
    return ApiCaller(RetrySettings(max_attempts=3), sleep=lambda s: None)


def test_discovery_reads_nodes_and_configmap(
    apiserver: FakeApiServer, api_client: client.ApiClient
) -> None:
    _seed(apiserver)
    apiserver.inject(Fault("GET", "nodes", 503))  # retried
    inventory = discover_inventory(api_client, _caller(), namespace="airflow-fate")
    assert [n.name for n in inventory.cluster.nodes] == ["h100-a"]
    assert inventory.cluster.nodes[0].nvlink
    assert inventory.placement([1]).gpu_uuids == ("GPU-bbbb",)


def test_missing_configmap_is_an_input_error(
    apiserver: FakeApiServer, api_client: client.ApiClient
) -> None:
    with pytest.raises(
        InputError, match="configmap airflow-fate/airflow-fate-inventory: not found"
    ):
        discover_inventory(api_client, _caller(), namespace="airflow-fate")


def test_configmap_without_devices_key(
    apiserver: FakeApiServer, api_client: client.ApiClient
) -> None:
    apiserver.create(
        "configmaps", {"metadata": {"name": "inv", "namespace": "ns"}, "data": {"cluster.yaml": ""}}
    )
    with pytest.raises(InputError, match=r"data\.devices\.yaml: missing"):
        discover_inventory(api_client, _caller(), namespace="ns", configmap="inv")


def test_rbac_refusal_is_not_retried(
    apiserver: FakeApiServer, api_client: client.ApiClient
) -> None:
    _seed(apiserver)
    apiserver.inject(Fault("GET", "nodes", 403, message='nodes is forbidden: cannot list "nodes"'))
    with pytest.raises(KubernetesApiError, match="HTTP 403: nodes is forbidden") as err:
        discover_inventory(api_client, _caller(), namespace="airflow-fate")
    assert err.value.attempts == 1


def test_executor_plans_on_the_discovered_cluster(
    apiserver: FakeApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``launcher = kubernetes`` without ``kubernetes_devices``: the executor's cluster is
    discovered through the kubeconfig, as a scheduler outside the cluster would."""
    _seed(apiserver)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kubeconfig", apiserver.url)))
    launcher_yaml = tmp_path / "launcher.yaml"
    launcher_yaml.write_text("pod: {namespace: airflow-fate, gpu_mode: env-pin}\n")
    values = {
        "models": "m.yaml",
        "launcher": "kubernetes",
        "kubernetes_settings": str(launcher_yaml),
    }
    settings = load_settings(lambda section, key: values.get(key) if section == "fate" else None)
    setup = build_backend(settings, tmp_path)
    assert [(n.name, n.gpu_count) for n in setup.cluster.nodes] == [("h100-a", 2)]
    where = setup.placement([1])
    assert (where.node, where.gpu_indices, where.gpu_uuids) == ("h100-a", (1,), ("GPU-bbbb",))
    assert apiserver.count("GET", "/configmaps/airflow-fate-inventory") == 1
