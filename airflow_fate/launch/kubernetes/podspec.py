"""Pure builder: one `LaunchRequest` -> the Pod (and, in DRA mode, the ResourceClaim).

Nothing here talks to an API server or imports the ``kubernetes`` client: the output is
plain JSON-shaped dicts, exactly what is POSTed, so golden files and schema validation
can check it offline.

Pinning rules (see ``docs/adr/0003-kubernetes-gpu-pinning.md``):

* the node is pinned with ``nodeSelector: kubernetes.io/hostname`` -- never
  ``nodeName``, which bypasses the scheduler and therefore DRA allocation;
* GPUs are pinned by UUID (NVIDIA's DRA driver no longer publishes ``index``) in one of
  the three `GpuMode` values.

A user pod template (``PodSettings.pod_template_file``) is the starting point; the
builder overlays only what placement and identity require and keeps everything else
(sidecars, tolerations, security context, CPU/memory requests).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from airflow_fate.errors import InputError
from airflow_fate.launch.kubernetes import naming
from airflow_fate.launch.kubernetes.placement import reporting_command
from airflow_fate.launch.kubernetes.settings import GpuMode, PodSettings
from airflow_fate.launch.types import GpuPlacement, LaunchRequest

BASE_CONTAINER = "base"
CLAIM_REQUEST = "gpus"
HOSTNAME_LABEL = "kubernetes.io/hostname"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
RESOURCE_API_VERSION = "resource.k8s.io/v1"

_UUID_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class StageObjects:
    """What one launch creates: the pod, and its ResourceClaim in DRA mode."""

    pod: Json
    claim: Json | None


def load_pod_template(path: str | Path) -> Json:
    """Read a user's pod template (a YAML ``Pod``), with errors naming file and reason."""
    p = Path(path)
    source = str(p)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(source, "", "pod template file not found") from None
    except OSError as exc:
        raise InputError(source, "", f"cannot read file: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise InputError(source, "", f"malformed YAML: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(source, "", "a pod template must be a YAML mapping (a Pod)")
    if data.get("kind", "Pod") != "Pod":
        raise InputError(source, "kind", f"expected kind Pod, got {data.get('kind')!r}")
    spec = data.get("spec", {})
    if not isinstance(spec, dict):
        raise InputError(source, "spec", "must be a mapping")
    containers = spec.get("containers", [])
    if not isinstance(containers, list) or not all(isinstance(c, dict) for c in containers):
        raise InputError(source, "spec.containers", "must be a list of containers")
    return data


def build_stage_objects(
    request: LaunchRequest,
    settings: PodSettings,
    executor_id: str,
    template: Mapping[str, Any] | None = None,
) -> StageObjects:
    """The pod (and DRA claim) that runs ``request`` exactly where the planner put it.

    Args:
        request: task identity, command and placement.
        settings: pod settings (image, GPU mode, volumes).
        executor_id: owner recorded in the ``airflow-fate/executor`` label.
        template: a parsed pod template; ``None`` starts from an empty pod.

    Raises:
        ValueError: the placement lacks GPU UUIDs that the GPU mode needs.
    """
    _check_uuids(request, settings.gpu_mode)
    claim = build_resource_claim(request, settings) if settings.gpu_mode is GpuMode.DRA else None
    return StageObjects(pod=build_pod(request, settings, executor_id, template), claim=claim)


def build_pod(
    request: LaunchRequest,
    settings: PodSettings,
    executor_id: str,
    template: Mapping[str, Any] | None = None,
) -> Json:
    """The Pod manifest for ``request`` (see `build_stage_objects`)."""
    _check_uuids(request, settings.gpu_mode)
    pod: Json = copy.deepcopy(dict(template)) if template else {}
    pod["apiVersion"] = "v1"
    pod["kind"] = "Pod"
    name = naming.pod_name(request.key)
    pod["metadata"] = _metadata(pod.get("metadata") or {}, request, settings, executor_id, name)
    pod["spec"] = _spec(pod.get("spec") or {}, request, settings, name)
    return pod


def build_resource_claim(request: LaunchRequest, settings: PodSettings) -> Json:
    """The ``resource.k8s.io/v1`` ResourceClaim that allocates exactly the chosen GPUs.

    One request for ``k`` devices of the configured class whose UUID is in the chosen
    set; for shards (``k > 1``) an optional ``matchAttribute`` constraint (PCIe root by
    default) so the allocator confirms the group is co-located as the planner assumed.
    """
    _check_uuids(request, GpuMode.DRA)
    pod = naming.pod_name(request.key)
    return gpu_claim(
        pod,
        request.namespace or settings.namespace,
        request.placement,
        settings,
        labels={**naming.STAGE_LABELS, **naming.task_labels(request.key)},
        annotations={**naming.task_annotations(request.key), "airflow-fate/pod": pod},
    )


def gpu_claim(
    pod: str,
    namespace: str,
    placement: GpuPlacement,
    settings: PodSettings,
    *,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
) -> Json:
    """The ResourceClaim of pod ``pod`` for exactly ``placement``'s GPUs (by UUID)."""
    uuids = ", ".join(json.dumps(u) for u in placement.gpu_uuids)
    expression = f"device.attributes[{json.dumps(settings.dra_attribute_domain)}].uuid in [{uuids}]"
    devices: Json = {
        "requests": [
            {
                "name": CLAIM_REQUEST,
                "exactly": {
                    "deviceClassName": settings.dra_device_class,
                    "allocationMode": "ExactCount",
                    "count": placement.k,
                    "selectors": [{"cel": {"expression": expression}}],
                },
            }
        ]
    }
    if placement.k > 1 and settings.shard_match_attribute:
        devices["constraints"] = [
            {"requests": [CLAIM_REQUEST], "matchAttribute": settings.shard_match_attribute}
        ]
    return {
        "apiVersion": RESOURCE_API_VERSION,
        "kind": "ResourceClaim",
        "metadata": {
            "name": naming.claim_name(pod),
            "namespace": namespace,
            "labels": dict(labels),
            "annotations": dict(annotations),
        },
        "spec": {"devices": devices},
    }


def _check_uuids(request: LaunchRequest, mode: GpuMode) -> None:
    placement = request.placement
    if mode is not GpuMode.DEVICE_PLUGIN and not placement.gpu_uuids:
        raise ValueError(
            f"{request.key}: GPU mode {mode.value!r} pins GPUs by UUID, but the placement on "
            f"node {placement.node!r} has none; add UUIDs to the inventory or use "
            "gpu_mode 'device-plugin'"
        )
    for uuid in placement.gpu_uuids:
        if not _UUID_OK.match(uuid):
            raise ValueError(f"{request.key}: malformed GPU UUID {uuid!r}")


def _metadata(
    base: Mapping[str, Any],
    request: LaunchRequest,
    settings: PodSettings,
    executor_id: str,
    name: str,
) -> Json:
    placement = request.placement
    meta = dict(base)
    meta.pop("generateName", None)
    meta["name"] = name
    meta["namespace"] = request.namespace or settings.namespace
    meta["labels"] = {
        **(base.get("labels") or {}),
        **settings.labels,
        **naming.STAGE_LABELS,
        **naming.task_labels(request.key),
        naming.EXECUTOR_LABEL: naming.label_value(executor_id),
    }
    meta["annotations"] = {
        **(base.get("annotations") or {}),
        **settings.annotations,
        **naming.task_annotations(request.key),
        **naming.placement_annotations(placement),
        naming.GPU_MODE_ANNOTATION: settings.gpu_mode.value,
    }
    return meta


def _spec(
    base: Mapping[str, Any], request: LaunchRequest, settings: PodSettings, name: str
) -> Json:
    mode = settings.gpu_mode
    spec = dict(base)
    spec.pop("nodeName", None)
    spec["restartPolicy"] = "Never"
    spec["serviceAccountName"] = settings.service_account
    spec["automountServiceAccountToken"] = False
    spec["nodeSelector"] = {
        **(base.get("nodeSelector") or {}),
        HOSTNAME_LABEL: request.placement.node,
    }
    tolerations = list(base.get("tolerations") or [])
    if GPU_TOLERATION not in tolerations:
        tolerations.append(dict(GPU_TOLERATION))
    spec["tolerations"] = tolerations
    if mode is GpuMode.ENV_PIN and settings.runtime_class:
        spec["runtimeClassName"] = settings.runtime_class
    if mode is GpuMode.DRA:
        claims = [c for c in base.get("resourceClaims") or [] if c.get("name") != CLAIM_REQUEST]
        claims.append({"name": CLAIM_REQUEST, "resourceClaimName": naming.claim_name(name)})
        spec["resourceClaims"] = claims
    spec["volumes"] = merge_named(base.get("volumes") or [], pod_volumes(settings))
    containers = [dict(c) for c in base.get("containers") or []]
    base_index = next(
        (i for i, c in enumerate(containers) if c.get("name") == BASE_CONTAINER), None
    )
    template_base = containers[base_index] if base_index is not None else {}
    merged = _container(template_base, request, settings)
    if base_index is None:
        containers.insert(0, merged)
    else:
        containers[base_index] = merged
    spec["containers"] = containers
    return spec


def pod_volumes(settings: PodSettings) -> list[Json]:
    volumes: list[Json] = []
    if settings.model_cache_host_path:
        volumes.append(
            {
                "name": "model-cache",
                "hostPath": {"path": settings.model_cache_host_path, "type": "DirectoryOrCreate"},
            }
        )
    volumes.append(
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": settings.shm_size}}
    )
    if settings.outputs_claim:
        volumes.append(
            {"name": "outputs", "persistentVolumeClaim": {"claimName": settings.outputs_claim}}
        )
    return volumes


def volume_mounts(settings: PodSettings) -> list[Json]:
    mounts: list[Json] = []
    if settings.model_cache_host_path:
        mounts.append({"name": "model-cache", "mountPath": settings.model_cache_mount_path})
    mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    if settings.outputs_claim:
        mounts.append({"name": "outputs", "mountPath": settings.outputs_mount_path})
    return mounts


def _env(request: LaunchRequest, settings: PodSettings) -> list[Json]:
    key, placement = request.key, request.placement
    values: dict[str, str] = {
        "FATE_DAG_ID": key.dag_id,
        "FATE_TASK_ID": key.task_id,
        "FATE_RUN_ID": key.run_id,
        "FATE_TRY_NUMBER": str(key.try_number),
        "FATE_MAP_INDEX": str(key.map_index),
        "FATE_NODE": placement.node,
        "FATE_GPU_MODE": settings.gpu_mode.value,
        "FATE_GPU_COUNT": str(placement.k),
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
    }
    if settings.model_cache_host_path:
        values["FATE_MODEL_CACHE"] = settings.model_cache_mount_path
    if settings.outputs_claim:
        values["FATE_OUTPUTS_DIR"] = settings.outputs_mount_path
    if settings.gpu_mode is not GpuMode.DEVICE_PLUGIN:
        values["FATE_GPU_UUIDS"] = ",".join(placement.gpu_uuids)
        values["FATE_GPU_INDICES"] = ",".join(str(i) for i in placement.gpu_indices)
    if settings.gpu_mode is GpuMode.ENV_PIN:
        values["NVIDIA_VISIBLE_DEVICES"] = ",".join(placement.gpu_uuids)
        values["NVIDIA_DRIVER_CAPABILITIES"] = "compute,utility"
    values.update(dict(request.env))
    return [{"name": k, "value": v} for k, v in values.items()]


def _container(base: Mapping[str, Any], request: LaunchRequest, settings: PodSettings) -> Json:
    mode = settings.gpu_mode
    container = dict(base)
    container["name"] = BASE_CONTAINER
    container["image"] = request.image or base.get("image") or settings.image
    command = request.command
    if mode is GpuMode.DEVICE_PLUGIN and settings.report_placement:
        command = reporting_command(command)
    container["args"] = list(command)
    container["env"] = merge_named(base.get("env") or [], _env(request, settings))
    mounts = volume_mounts(settings)
    taken_paths = {m["mountPath"] for m in mounts}
    kept = [m for m in base.get("volumeMounts") or [] if m.get("mountPath") not in taken_paths]
    container["volumeMounts"] = merge_named(kept, mounts)
    resources = gpu_resources(base.get("resources") or {}, mode, request.placement.k)
    if resources:
        container["resources"] = resources
    return container


def gpu_resources(base: Mapping[str, Any], mode: GpuMode, k: int) -> Json:
    """A container's ``resources`` with the GPU request of ``mode`` for ``k`` GPUs: the
    device-plugin count, or the DRA claim (a template's own GPU count is dropped)."""
    resources: Json = copy.deepcopy(dict(base))
    if mode is GpuMode.DEVICE_PLUGIN:
        count = str(k)
        resources["limits"] = {**(resources.get("limits") or {}), GPU_RESOURCE: count}
        resources["requests"] = {**(resources.get("requests") or {}), GPU_RESOURCE: count}
    else:
        for part in ("limits", "requests"):
            if part in resources:
                resources[part] = {k: v for k, v in resources[part].items() if k != GPU_RESOURCE}
    if mode is GpuMode.DRA:
        claims = [c for c in resources.get("claims") or [] if c.get("name") != CLAIM_REQUEST]
        resources["claims"] = [*claims, {"name": CLAIM_REQUEST}]
    return resources


def merge_named(base: Iterable[Mapping[str, Any]], ours: Iterable[Json]) -> list[Json]:
    """Entries of ``base`` whose name we do not set, then ours (ours win on a name clash)."""
    mine = list(ours)
    names = {entry["name"] for entry in mine}
    return [dict(e) for e in base if e.get("name") not in names] + mine
