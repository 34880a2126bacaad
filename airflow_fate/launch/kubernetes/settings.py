"""Settings of the Kubernetes launcher and of the stage pods it builds.

Settings are passed in (never read from global config deep inside classes): the executor
builds a `LauncherSettings` from Airflow's config or from a ``launcher.yaml`` (as mounted
from the ``airflow-fate-launcher`` ConfigMap in ``k8s/``) with `load_settings`.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from airflow_fate.domain.loaders import parse_text, read_text, validate_document


class GpuMode(StrEnum):
    """How a pod is given exactly the GPUs the planner chose.

    ``dra``: a ResourceClaim (``resource.k8s.io/v1``) selecting the GPUs by UUID; the
    scheduler and kubelet enforce it. ``env-pin``: ``NVIDIA_VISIBLE_DEVICES`` set to the
    UUIDs under the ``nvidia`` runtime class; only safe on nodes this launcher owns, since
    nothing stops another pod from naming the same GPUs. ``device-plugin``: ask for
    ``nvidia.com/gpu: k`` and let the device plugin choose; the stage reports which GPUs
    it got and the launcher emits a ``PLACED`` event with the real placement.
    """

    DRA = "dra"
    ENV_PIN = "env-pin"
    DEVICE_PLUGIN = "device-plugin"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PodSettings(_Frozen):
    """How stage pods look. Defaults match the manifests in ``k8s/``."""

    namespace: str = Field(default="airflow-fate", min_length=1)
    image: str = Field(default="apache/airflow:3.3.2-python3.11", min_length=1)
    service_account: str = "airflow-fate-stage"
    gpu_mode: GpuMode = GpuMode.DRA
    dra_device_class: str = "gpu.nvidia.com"
    dra_attribute_domain: str = Field(
        default="gpu.nvidia.com", description="CEL attribute domain of the DRA driver"
    )
    shard_match_attribute: str | None = Field(
        default="resource.kubernetes.io/pcieRoot",
        description="matchAttribute constraint for shard groups (k > 1); null disables it",
    )
    runtime_class: str | None = Field(
        default="nvidia", description="env-pin mode: runtimeClassName; null leaves it unset"
    )
    model_cache_host_path: str | None = Field(
        default="/var/lib/airflow-fate/models",
        description="node-local model cache (hostPath); null mounts none",
    )
    model_cache_mount_path: str = "/models"
    outputs_claim: str | None = "airflow-fate-outputs"
    outputs_mount_path: str = "/outputs"
    shm_size: str = "8Gi"
    report_placement: bool = Field(
        default=True,
        description="device-plugin mode: wrap the command so the stage logs its GPU UUIDs",
    )
    pod_template_file: Path | None = Field(
        default=None, description="a pod template; a relative path is relative to launcher.yaml"
    )
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class RetrySettings(_Frozen):
    """Backoff for Kubernetes API calls refused with 429 or 5xx (or dropped connections).

    The delay before retry ``n`` (0-based) is ``min(max_delay_s, base_delay_s * 2**n)``,
    or the server's ``Retry-After`` when it sends one (capped at ``max_retry_after_s``).
    """

    base_delay_s: float = Field(default=0.5, gt=0)
    max_delay_s: float = Field(default=30.0, gt=0)
    max_retry_after_s: float = Field(default=120.0, gt=0)
    max_attempts: int = Field(default=5, ge=1, description="for calls other than pod creation")
    launch_max_attempts: int = Field(
        default=12, ge=1, description="creation attempts before the task is failed"
    )


class WorkerPodSettings(_Frozen):
    """GPU worker pods (``[fate] kubernetes_mode = worker-pods``).

    A worker pod is built like a stage pod (the same template, image, pinning, volumes)
    but runs the task agent (``python -m airflow_fate.launch.agent``) with the device
    worker beside it, and lives on from one stage to the next.
    """

    service_account: str = Field(
        default="airflow-fate-worker", description="needs no API rights (k8s/base)"
    )
    agent_port: int = Field(default=8790, ge=1, le=65535, description="the agent's port")
    secret_name: str = Field(
        default="airflow-fate-agent",
        min_length=1,
        description="the Secret holding the agent key; the executor creates it if missing",
    )
    platform: Literal["cuda", "cpu"] = Field(
        default="cuda",
        description="cuda: the device worker runs on the pod's GPUs; cpu: virtual CPU "
        "devices named by the GPUs' UUIDs (clusters without GPUs, tests)",
    )
    cpu_threads: int | None = Field(
        default=None, ge=1, description="cpu platform: torch threads per device"
    )
    start_timeout_s: float = Field(
        default=600.0, gt=0, description="pod created -> agent answering, else it is deleted"
    )
    agent_timeout_s: float = Field(default=5.0, gt=0, description="per request to an agent")
    poll_interval_s: float = Field(
        default=0.5, gt=0, description="how often the agents of busy pods are asked"
    )
    work_dir: str = Field(
        default="/tmp/airflow-fate-agent", min_length=1, description="inside the pod"
    )
    prestart: bool = Field(
        default=True,
        description="start one empty single-GPU worker pod per GPU when the scheduler "
        "starts, so only shard groups and replaced or expired pods start on a stage's "
        "critical path (the simulator's default); false starts each pod on first use",
    )


DEFAULT_FATAL_WAITING_REASONS = (
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
)


class LauncherSettings(_Frozen):
    """Behaviour of `KubernetesLauncher`.

    Attributes:
        executor_id: identity of this executor; stored in the ``airflow-fate/executor``
            label of its pods. Adoption after a restart rewrites it.
        on_finish: ``delete`` removes finished pods; ``label`` keeps them (for logs and
            debugging) and marks them ``airflow-fate/done=true``.
        watch_timeout_s: server-side ``timeoutSeconds`` of each watch request; the watch
            resumes from the last resourceVersion after it.
        request_timeout_s: client-side timeout of every API call.
        unschedulable_timeout_s: fail a pod that stayed unschedulable this long (the pod
            is pinned to one node, so waiting forever would hide a planner/inventory
            mismatch); ``None`` waits forever.
        worker: GPU worker pods (``kubernetes_mode = worker-pods``).
    """

    executor_id: str = Field(default="airflow-fate", min_length=1)
    on_finish: Literal["delete", "label"] = "delete"
    watch_timeout_s: int = Field(default=60, ge=1)
    request_timeout_s: float = Field(default=30.0, gt=0)
    unschedulable_timeout_s: float | None = Field(default=600.0, gt=0)
    fatal_waiting_reasons: tuple[str, ...] = DEFAULT_FATAL_WAITING_REASONS
    placement_log_bytes: int = Field(
        default=65536, ge=1024, description="how much of a stage log to scan for its GPUs"
    )
    retry: RetrySettings = Field(default_factory=RetrySettings)
    pod: PodSettings = Field(default_factory=PodSettings)
    worker: WorkerPodSettings = Field(default_factory=WorkerPodSettings)


def load_settings(path: str | Path) -> LauncherSettings:
    """Load a ``launcher.yaml``; every problem becomes one `InputError` naming the spot."""
    p = Path(path)
    source = str(p)
    data: Any = parse_text(read_text(p), source)
    settings = validate_document(LauncherSettings, {} if data is None else data, source)
    template = settings.pod.pod_template_file
    if template is not None and not template.is_absolute():
        # Relative to launcher.yaml, so the pair works wherever it is mounted (the
        # ConfigMap in k8s/, a compose bind mount, a local checkout).
        pod = settings.pod.model_copy(update={"pod_template_file": p.parent / template})
        settings = settings.model_copy(update={"pod": pod})
    return settings
