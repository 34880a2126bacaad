"""Golden pod specs for every GPU mode (single GPU and shard groups), schema-checked.

Regenerate the golden files after an intended change with
``FATE_UPDATE_GOLDEN=1 pytest tests/unit/launch/kubernetes/test_k8s_podspec.py`` and
review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_fate.errors import InputError
from airflow_fate.launch.kubernetes import naming
from airflow_fate.launch.kubernetes.podspec import (
    build_pod,
    build_resource_claim,
    build_stage_objects,
    load_pod_template,
)
from airflow_fate.launch.kubernetes.settings import GpuMode, PodSettings
from airflow_fate.launch.types import (
    GpuPlacement,
    LaunchRequest,
    TaskKey,
    airflow_task_command,
)

GOLDEN = Path(__file__).parent / "golden"
K8S_VERSION = "1.34.0"
KEY = TaskKey(
    dag_id="rag_pipeline",
    task_id="answer",
    run_id="scheduled__2026-03-01T00:00:00+00:00",
    try_number=2,
    map_index=3,
)
WORKLOAD = '{"ti": {"id": "0195e6d4-0000-7000-8000-000000000001"}, "token": "tok"}'


def _request(k: int) -> LaunchRequest:
    indices = tuple(range(2, 2 + k))
    return LaunchRequest(
        key=KEY,
        command=airflow_task_command(WORKLOAD),
        placement=GpuPlacement(
            node="h100-a",
            gpu_indices=indices,
            gpu_uuids=tuple(f"GPU-0b7ca7e4-5c2a-4d0e-9f4e-00000000000{i}" for i in indices),
        ),
    )


def _settings(mode: GpuMode, **extra: Any) -> PodSettings:
    return PodSettings(
        namespace="airflow-fate", gpu_mode=mode, image="ghcr.io/acme/stage:1.0", **extra
    )


def _documents(mode: GpuMode, k: int) -> list[dict[str, Any]]:
    objects = build_stage_objects(_request(k), _settings(mode), "scheduler-7")
    return [o for o in (objects.claim, objects.pod) if o is not None]


CASES = [pytest.param(mode, k, id=f"{mode.value}-k{k}") for mode in GpuMode for k in (1, 4)]


@pytest.mark.parametrize(("mode", "k"), CASES)
def test_pod_spec_matches_golden_file(mode: GpuMode, k: int) -> None:
    docs = _documents(mode, k)
    path = GOLDEN / f"{mode.value}-k{k}.yaml"
    rendered = yaml.safe_dump_all(docs, sort_keys=True)
    if os.environ.get("FATE_UPDATE_GOLDEN"):
        path.write_text(rendered, encoding="utf-8")
    assert path.exists(), f"missing golden file {path}; run with FATE_UPDATE_GOLDEN=1"
    assert list(yaml.safe_load_all(path.read_text(encoding="utf-8"))) == docs


@pytest.mark.parametrize(("mode", "k"), CASES)
def test_pod_spec_is_valid_against_kubernetes_1_34_schema(mode: GpuMode, k: int) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for doc in _documents(mode, k):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def _container(pod: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in pod["spec"]["containers"] if c["name"] == "base")


def _env(pod: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in _container(pod)["env"]}


@pytest.mark.parametrize("mode", list(GpuMode))
def test_node_is_pinned_by_hostname_selector_never_node_name(mode: GpuMode) -> None:
    template = {"spec": {"nodeName": "elsewhere", "containers": [{"name": "base"}]}}
    pod = build_pod(_request(1), _settings(mode), "s", template)
    assert pod["spec"]["nodeSelector"]["kubernetes.io/hostname"] == "h100-a"
    assert "nodeName" not in pod["spec"]


def test_dra_claim_selects_chosen_uuids_with_count_and_pcie_constraint() -> None:
    claim = build_resource_claim(_request(4), _settings(GpuMode.DRA))
    assert claim["apiVersion"] == "resource.k8s.io/v1"
    request = claim["spec"]["devices"]["requests"][0]["exactly"]
    assert request["count"] == 4
    assert request["allocationMode"] == "ExactCount"
    expression = request["selectors"][0]["cel"]["expression"]
    for uuid in _request(4).placement.gpu_uuids:
        assert f'"{uuid}"' in expression
    assert expression.startswith('device.attributes["gpu.nvidia.com"].uuid in [')
    assert claim["spec"]["devices"]["constraints"] == [
        {"requests": ["gpus"], "matchAttribute": "resource.kubernetes.io/pcieRoot"}
    ]


def test_dra_single_gpu_has_no_shard_constraint_and_constraint_can_be_disabled() -> None:
    single = build_resource_claim(_request(1), _settings(GpuMode.DRA))
    assert "constraints" not in single["spec"]["devices"]
    off = build_resource_claim(_request(4), _settings(GpuMode.DRA, shard_match_attribute=None))
    assert "constraints" not in off["spec"]["devices"]


def test_dra_pod_references_its_claim_from_the_base_container() -> None:
    pod = build_pod(_request(2), _settings(GpuMode.DRA), "s")
    name = naming.pod_name(KEY)
    assert pod["spec"]["resourceClaims"] == [
        {"name": "gpus", "resourceClaimName": naming.claim_name(name)}
    ]
    assert _container(pod)["resources"]["claims"] == [{"name": "gpus"}]
    assert "runtimeClassName" not in pod["spec"]


def test_env_pin_sets_visible_devices_runtime_class_and_bus_order() -> None:
    pod = build_pod(_request(2), _settings(GpuMode.ENV_PIN), "s")
    env = _env(pod)
    assert env["NVIDIA_VISIBLE_DEVICES"] == ",".join(_request(2).placement.gpu_uuids)
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert pod["spec"]["runtimeClassName"] == "nvidia"
    assert "resources" not in _container(pod)


def test_device_plugin_requests_k_gpus_and_wraps_command_to_report_uuids() -> None:
    pod = build_pod(_request(4), _settings(GpuMode.DEVICE_PLUGIN), "s")
    container = _container(pod)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert container["args"][:2] == ["bash", "-c"]
    assert "FATE-PLACEMENT" in container["args"][2]
    assert container["args"][4:] == list(airflow_task_command(WORKLOAD))
    assert "NVIDIA_VISIBLE_DEVICES" not in _env(pod)


def test_device_plugin_without_uuids_is_allowed_other_modes_refuse() -> None:
    bare = LaunchRequest(
        key=KEY,
        command=("true",),
        placement=GpuPlacement(node="h100-a", gpu_indices=(0, 1)),
    )
    build_pod(bare, _settings(GpuMode.DEVICE_PLUGIN), "s")
    for mode in (GpuMode.DRA, GpuMode.ENV_PIN):
        with pytest.raises(ValueError, match="pins GPUs by UUID"):
            build_pod(bare, _settings(mode), "s")


def test_malformed_uuid_is_rejected_before_it_reaches_cel() -> None:
    bad = LaunchRequest(
        key=KEY,
        command=("true",),
        placement=GpuPlacement(node="n", gpu_indices=(0,), gpu_uuids=('GPU-1"] || true || ["',)),
    )
    with pytest.raises(ValueError, match="malformed GPU UUID"):
        build_resource_claim(bad, _settings(GpuMode.DRA))


def test_identity_labels_are_label_safe_and_annotations_exact() -> None:
    pod = build_pod(_request(1), _settings(GpuMode.DRA), "scheduler-7")
    labels, annotations = pod["metadata"]["labels"], pod["metadata"]["annotations"]
    assert annotations[naming.RUN_ID] == KEY.run_id
    assert labels[naming.RUN_ID] != KEY.run_id
    assert naming.is_label_value(labels[naming.RUN_ID])
    assert labels[naming.MAP_INDEX] == "3"
    assert labels[naming.TRY_NUMBER] == "2"
    assert labels[naming.EXECUTOR_LABEL] == "scheduler-7"
    assert labels["app.kubernetes.io/managed-by"] == "airflow-fate"
    assert naming.key_from_annotations(annotations) == KEY


def test_volumes_for_model_cache_outputs_and_shm() -> None:
    pod = build_pod(_request(1), _settings(GpuMode.DRA), "s")
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["model-cache"]["hostPath"]["path"] == "/var/lib/airflow-fate/models"
    assert volumes["outputs"]["persistentVolumeClaim"]["claimName"] == "airflow-fate-outputs"
    assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"
    mounts = {m["mountPath"] for m in _container(pod)["volumeMounts"]}
    assert mounts == {"/models", "/outputs", "/dev/shm"}
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["spec"]["restartPolicy"] == "Never"


def test_template_is_kept_and_overlaid(tmp_path: Path) -> None:
    template_file = tmp_path / "pod.yaml"
    template_file.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"labels": {"team": "search"}, "annotations": {"a": "b"}},
                "spec": {
                    "priorityClassName": "batch-high",
                    "nodeSelector": {"pool": "gpu"},
                    "tolerations": [{"key": "dedicated", "operator": "Exists"}],
                    "containers": [
                        {
                            "name": "base",
                            "image": "template/image:2",
                            "env": [{"name": "HF_HOME", "value": "/models/hf"}],
                            "volumeMounts": [{"name": "scratch", "mountPath": "/dev/shm"}],
                            "resources": {
                                "requests": {"cpu": "4", "memory": "32Gi", "nvidia.com/gpu": "1"}
                            },
                        },
                        {"name": "log-shipper", "image": "fluent-bit:3"},
                    ],
                    "volumes": [{"name": "scratch", "emptyDir": {}}],
                },
            }
        )
    )
    template = load_pod_template(template_file)
    pod = build_pod(_request(2), _settings(GpuMode.DRA), "s", template)
    spec = pod["spec"]
    assert pod["metadata"]["labels"]["team"] == "search"
    assert spec["priorityClassName"] == "batch-high"
    assert spec["nodeSelector"] == {"pool": "gpu", "kubernetes.io/hostname": "h100-a"}
    assert {"key": "dedicated", "operator": "Exists"} in spec["tolerations"]
    assert [c["name"] for c in spec["containers"]] == ["base", "log-shipper"]
    base = _container(pod)
    assert base["image"] == "template/image:2"
    assert _env(pod)["HF_HOME"] == "/models/hf"
    # Our /dev/shm mount replaces the template's; the GPU request is dropped (DRA owns GPUs).
    assert [m["name"] for m in base["volumeMounts"] if m["mountPath"] == "/dev/shm"] == ["dshm"]
    assert base["resources"]["requests"] == {"cpu": "4", "memory": "32Gi"}
    assert template["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] == "1"


def test_request_image_wins_over_template_and_settings() -> None:
    template = {"spec": {"containers": [{"name": "base", "image": "template:1"}]}}
    req = _request(1)
    custom = LaunchRequest(req.key, req.command, req.placement, image="per-task:9")
    assert _container(build_pod(custom, _settings(GpuMode.DRA), "s", template))["image"] == (
        "per-task:9"
    )
    assert _container(build_pod(req, _settings(GpuMode.DRA), "s"))["image"] == (
        "ghcr.io/acme/stage:1.0"
    )


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        pytest.param("kind: Deployment\n", "expected kind Pod", id="wrong-kind"),
        pytest.param("- a\n- b\n", "must be a YAML mapping", id="not-mapping"),
        pytest.param("spec: {containers: 3}\n", "list of containers", id="bad-containers"),
        pytest.param("spec: [\n", "malformed YAML", id="bad-yaml"),
    ],
)
def test_bad_template_names_file_and_reason(tmp_path: Path, content: str, reason: str) -> None:
    path = tmp_path / "tpl.yaml"
    path.write_text(content)
    with pytest.raises(InputError, match=reason) as err:
        load_pod_template(path)
    assert err.value.source == str(path)


def test_missing_template_file() -> None:
    with pytest.raises(InputError, match="not found"):
        load_pod_template("/nonexistent/pod.yaml")
