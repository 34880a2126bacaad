"""Pure builder: one GPU set -> its worker pod (and, in DRA mode, its ResourceClaim).

A worker pod is pinned exactly like a stage pod (ADR 0003: ``nodeSelector`` on the
hostname, GPUs by UUID through a DRA claim or ``NVIDIA_VISIBLE_DEVICES``), starts from
the same pod template (so it reaches the API server, DAGs and model catalog the same
way) and mounts the same volumes. What differs:

* it runs the task agent (``python -m airflow_fate.launch.agent``), which starts the
  device worker; its `AgentConfig` (devices, memory budgets) is JSON in its environment;
* the agent's key comes from the Kubernetes Secret (``secretKeyRef``), its listening
  address from the downward API (the pod's IP), and it exposes one named port;
* it is labelled as a GPU worker (the NetworkPolicy admits only the scheduler to that
  port) and named after its GPU set, not a task.

Device-plugin mode is refused: the plugin picks the GPUs when the pod starts, but a
worker pod must hold the GPU set the planner keeps state for.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from airflow_fate.domain.models import GIB
from airflow_fate.launch.agent.messages import CONFIG_ENV, HOST_ENV, SECRET_ENV, AgentConfig
from airflow_fate.launch.inventory import Inventory
from airflow_fate.launch.kubernetes import naming
from airflow_fate.launch.kubernetes.podspec import (
    BASE_CONTAINER,
    CLAIM_REQUEST,
    GPU_TOLERATION,
    HOSTNAME_LABEL,
    StageObjects,
    gpu_claim,
    gpu_resources,
    merge_named,
    pod_volumes,
    volume_mounts,
)
from airflow_fate.launch.kubernetes.settings import GpuMode, LauncherSettings, WorkerPodSettings
from airflow_fate.launch.types import GpuPlacement
from airflow_fate.runtime.binding import DeviceBinding

AGENT_MODULE = "airflow_fate.launch.agent"
AGENT_PORT_NAME = "agent"
SECRET_KEY = "token"
"""The key of the agent Secret's ``data`` that holds the shared secret."""

Json = dict[str, Any]


def worker_binding(
    inventory: Inventory, placement: GpuPlacement, worker: WorkerPodSettings
) -> DeviceBinding:
    """The device worker's binding for a GPU set: its GPUs and the planner's budgets.

    Memory budgets are the cluster's figures for the node's GPU type (what
    `ClusterState` assumes), summed over the set as for a local shard group. Inside the
    pod the runtime exposes exactly these GPUs, so CUDA indices are ``0..k-1`` and the
    ids follow PCI bus order (``CUDA_DEVICE_ORDER=PCI_BUS_ID``), which is the order torch
    lists them in.
    """
    node = next(n for n in inventory.cluster.nodes if n.name == placement.node)
    gpu_type = inventory.cluster.gpu_types[node.gpu_type]
    k = placement.k
    devices = sorted(
        (inventory.devices.device(placement.node, i) for i in placement.gpu_indices),
        key=lambda d: d.pci_bus_id.lower(),
    )
    cuda = worker.platform == "cuda"
    threads = worker.cpu_threads * k if worker.cpu_threads and not cuda else None
    return DeviceBinding(
        ids=[d.uuid for d in devices],
        platform=worker.platform,
        cuda_indices=list(range(k)) if cuda else [],
        memory_bytes=int(gpu_type.usable_gib * GIB) * k,
        prefix_bytes=int(gpu_type.memory_gib * gpu_type.prefix_kv_fraction * GIB) * k,
        threads=threads,
    )


def agent_config(
    placement: GpuPlacement,
    binding: DeviceBinding,
    settings: LauncherSettings,
    stage_timeout_s: float,
) -> AgentConfig:
    """The `AgentConfig` of the worker pod for ``placement``."""
    return AgentConfig(
        pod=naming.worker_pod_name(placement.node, placement.gpu_indices),
        node=placement.node,
        gpu_indices=list(placement.gpu_indices),
        gpu_uuids=list(placement.gpu_uuids),
        binding=binding,
        port=settings.worker.agent_port,
        work_dir=settings.worker.work_dir,
        stage_timeout_s=stage_timeout_s,
    )


def build_worker_objects(
    config: AgentConfig,
    settings: LauncherSettings,
    template: Mapping[str, Any] | None = None,
) -> StageObjects:
    """The worker pod (and DRA claim) for the GPU set ``config`` names.

    Raises:
        ValueError: device-plugin mode, or GPUs without UUIDs.
    """
    mode = settings.pod.gpu_mode
    if mode is GpuMode.DEVICE_PLUGIN:
        raise ValueError(
            "worker pods hold the GPUs the planner chose; gpu_mode 'device-plugin' lets "
            "the plugin choose them: use 'dra' or 'env-pin', or kubernetes_mode "
            "'pod-per-stage'"
        )
    placement = GpuPlacement(config.node, tuple(config.gpu_indices), tuple(config.gpu_uuids))
    if not placement.gpu_uuids:
        raise ValueError(f"worker pod {config.pod}: GPUs on {config.node} have no UUIDs")
    namespace = settings.pod.namespace
    pod: Json = copy.deepcopy(dict(template)) if template else {}
    pod["apiVersion"] = "v1"
    pod["kind"] = "Pod"
    pod["metadata"] = _metadata(pod.get("metadata") or {}, config, settings)
    pod["spec"] = _spec(pod.get("spec") or {}, config, settings)
    claim = None
    if mode is GpuMode.DRA:
        claim = gpu_claim(
            config.pod,
            namespace,
            placement,
            settings.pod,
            labels=worker_labels(config, settings.executor_id),
            annotations={"airflow-fate/pod": config.pod},
        )
    return StageObjects(pod=pod, claim=claim)


def worker_labels(config: AgentConfig, executor_id: str) -> dict[str, str]:
    return {
        **naming.WORKER_LABELS,
        naming.EXECUTOR_LABEL: naming.label_value(executor_id),
        naming.NODE_LABEL: naming.label_value(config.node),
        naming.GPU_SET_LABEL: "-".join(str(i) for i in config.gpu_indices),
    }


def _metadata(base: Mapping[str, Any], config: AgentConfig, settings: LauncherSettings) -> Json:
    meta = dict(base)
    meta.pop("generateName", None)
    meta["name"] = config.pod
    meta["namespace"] = settings.pod.namespace
    meta["labels"] = {
        **(base.get("labels") or {}),
        **settings.pod.labels,
        **worker_labels(config, settings.executor_id),
    }
    meta["annotations"] = {
        **(base.get("annotations") or {}),
        **settings.pod.annotations,
        **naming.placement_annotations(
            GpuPlacement(config.node, tuple(config.gpu_indices), tuple(config.gpu_uuids))
        ),
        naming.GPU_MODE_ANNOTATION: settings.pod.gpu_mode.value,
    }
    return meta


def _spec(base: Mapping[str, Any], config: AgentConfig, settings: LauncherSettings) -> Json:
    mode = settings.pod.gpu_mode
    spec = dict(base)
    spec.pop("nodeName", None)
    spec["restartPolicy"] = "Never"  # a worker that dies lost its GPU state: replace it
    spec["serviceAccountName"] = settings.worker.service_account
    spec["automountServiceAccountToken"] = False
    spec["nodeSelector"] = {**(base.get("nodeSelector") or {}), HOSTNAME_LABEL: config.node}
    tolerations = list(base.get("tolerations") or [])
    if GPU_TOLERATION not in tolerations:
        tolerations.append(dict(GPU_TOLERATION))
    spec["tolerations"] = tolerations
    if mode is GpuMode.ENV_PIN and settings.pod.runtime_class:
        spec["runtimeClassName"] = settings.pod.runtime_class
    if mode is GpuMode.DRA:
        claims = [c for c in base.get("resourceClaims") or [] if c.get("name") != CLAIM_REQUEST]
        claims.append({"name": CLAIM_REQUEST, "resourceClaimName": naming.claim_name(config.pod)})
        spec["resourceClaims"] = claims
    spec["volumes"] = merge_named(base.get("volumes") or [], pod_volumes(settings.pod))
    containers = [dict(c) for c in base.get("containers") or []]
    index = next((i for i, c in enumerate(containers) if c.get("name") == BASE_CONTAINER), None)
    merged = _container(containers[index] if index is not None else {}, config, settings)
    if index is None:
        containers.insert(0, merged)
    else:
        containers[index] = merged
    spec["containers"] = containers
    return spec


def _container(base: Mapping[str, Any], config: AgentConfig, settings: LauncherSettings) -> Json:
    container = dict(base)
    container["name"] = BASE_CONTAINER
    container["image"] = base.get("image") or settings.pod.image
    container.pop("command", None)
    container["args"] = ["python", "-m", AGENT_MODULE]
    container["env"] = merge_named(base.get("env") or [], _env(config, settings))
    ports = [p for p in base.get("ports") or [] if p.get("name") != AGENT_PORT_NAME]
    ports.append({"name": AGENT_PORT_NAME, "containerPort": config.port, "protocol": "TCP"})
    container["ports"] = ports
    container["readinessProbe"] = {
        "httpGet": {"path": "/healthz", "port": AGENT_PORT_NAME},
        "periodSeconds": 2,
    }
    mounts = volume_mounts(settings.pod)
    taken = {m["mountPath"] for m in mounts}
    kept = [m for m in base.get("volumeMounts") or [] if m.get("mountPath") not in taken]
    container["volumeMounts"] = merge_named(kept, mounts)
    resources = gpu_resources(
        base.get("resources") or {}, settings.pod.gpu_mode, len(config.gpu_indices)
    )
    if resources:
        container["resources"] = resources
    return container


def _env(config: AgentConfig, settings: LauncherSettings) -> list[Json]:
    pod = settings.pod
    values: dict[str, str] = {
        CONFIG_ENV: config.model_dump_json(),
        "FATE_NODE": config.node,
        "FATE_GPU_MODE": pod.gpu_mode.value,
        "FATE_GPU_COUNT": str(len(config.gpu_indices)),
        "FATE_GPU_UUIDS": ",".join(config.gpu_uuids),
        "FATE_GPU_INDICES": ",".join(str(i) for i in config.gpu_indices),
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "PYTHONUNBUFFERED": "1",
    }
    if pod.model_cache_host_path:
        values["FATE_MODEL_CACHE"] = pod.model_cache_mount_path
    if pod.outputs_claim:
        values["FATE_OUTPUTS_DIR"] = pod.outputs_mount_path
    if pod.gpu_mode is GpuMode.ENV_PIN:
        values["NVIDIA_VISIBLE_DEVICES"] = ",".join(config.gpu_uuids)
        values["NVIDIA_DRIVER_CAPABILITIES"] = "compute,utility"
    env: list[Json] = [{"name": k, "value": v} for k, v in values.items()]
    env.append(
        {
            "name": SECRET_ENV,
            "valueFrom": {"secretKeyRef": {"name": settings.worker.secret_name, "key": SECRET_KEY}},
        }
    )
    env.append({"name": HOST_ENV, "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})
    return env
