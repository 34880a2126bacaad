"""Messages between the executor and the Kubernetes launcher: what to launch, what happened.

These are small immutable values with no Kubernetes or Airflow imports, so the executor,
the pod-spec builder, the watcher and the tests can all share them. The executor turns an
Airflow workload plus a planner `Assignment` into a `LaunchRequest`; the launcher answers
with `LaunchEvent` values from `poll()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

AIRFLOW_EXECUTE_MODULE = "airflow.sdk.execution_time.execute_workload"


@dataclass(frozen=True, slots=True)
class TaskKey:
    """Identity of one Airflow task-instance try.

    It mirrors Airflow's ``TaskInstanceKey`` without importing Airflow. ``map_index`` is
    ``-1`` for unmapped tasks, as in Airflow.
    """

    dag_id: str
    task_id: str
    run_id: str
    try_number: int
    map_index: int = -1

    def __post_init__(self) -> None:
        for name in ("dag_id", "task_id", "run_id"):
            if not getattr(self, name):
                raise ValueError(f"TaskKey.{name} must not be empty")
        if self.try_number < 0:
            raise ValueError(f"TaskKey.try_number must be >= 0, got {self.try_number}")
        if self.map_index < -1:
            raise ValueError(f"TaskKey.map_index must be >= -1, got {self.map_index}")

    def __str__(self) -> str:
        mapped = f"[{self.map_index}]" if self.map_index >= 0 else ""
        return f"{self.dag_id}.{self.task_id}{mapped} run={self.run_id} try={self.try_number}"


@dataclass(frozen=True, slots=True)
class GpuPlacement:
    """Where the planner put a stage: one node and k GPUs on it.

    ``gpu_indices`` are node-local indices (as in ``cluster.yaml``) and ``gpu_uuids`` the
    matching NVIDIA UUIDs from the inventory, in the same order. UUIDs are what pins a GPU
    in the ``dra`` and ``env-pin`` modes; they may be empty only in ``device-plugin`` mode,
    where Kubernetes picks the GPUs and the stage reports them back.
    """

    node: str
    gpu_indices: tuple[int, ...]
    gpu_uuids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.node:
            raise ValueError("GpuPlacement.node must not be empty")
        if not self.gpu_indices:
            raise ValueError("GpuPlacement needs at least one GPU")
        if len(set(self.gpu_indices)) != len(self.gpu_indices):
            raise ValueError(f"GpuPlacement.gpu_indices repeat a GPU: {self.gpu_indices}")
        if self.gpu_uuids and len(self.gpu_uuids) != len(self.gpu_indices):
            raise ValueError(
                f"GpuPlacement has {len(self.gpu_indices)} indices but "
                f"{len(self.gpu_uuids)} UUIDs; they must pair up"
            )

    @property
    def k(self) -> int:
        """Number of GPUs (1 for a single GPU, more for a shard group)."""
        return len(self.gpu_indices)


@dataclass(frozen=True, slots=True)
class LaunchRequest:
    """Everything the launcher needs to start one stage as a pod.

    Attributes:
        key: the task-instance try this pod runs.
        command: argv of the Airflow task command, normally from `airflow_task_command`.
        placement: node and GPUs chosen by the planner.
        image: container image for this task; ``None`` uses the configured default.
        namespace: namespace for this pod; ``None`` uses the configured default.
        env: extra environment variables for the stage container, as ``(name, value)``.
    """

    key: TaskKey
    command: tuple[str, ...]
    placement: GpuPlacement
    image: str | None = None
    namespace: str | None = None
    env: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.command:
            raise ValueError(f"LaunchRequest for {self.key} has an empty command")


def airflow_task_command(workload_json: str) -> tuple[str, ...]:
    """The argv that runs one Airflow 3 workload inside a stage pod.

    Airflow 3 hands executors a serialised ``ExecuteTask`` workload; the task SDK runs it
    with this module, exactly as the stock Kubernetes executor does.
    """
    return ("python", "-m", AIRFLOW_EXECUTE_MODULE, "--json-string", workload_json)


class EventKind(StrEnum):
    """What `KubernetesLauncher.poll` can report about a task."""

    RUNNING = "running"
    """The pod runs on its node; ``gpu_uuids`` are known except in device-plugin mode."""
    PLACED = "placed"
    """Device-plugin mode: the stage reported the GPUs Kubernetes gave it."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    """The task failed; ``reason`` says why (pod failure, fatal Pending, API refusal)."""
    ADOPTED = "adopted"
    """This launcher took over a pod launched by an earlier (restarted) scheduler."""
    RELEASED = "released"
    """Another executor adopted the pod; stop tracking it without failing the task."""


@dataclass(frozen=True, slots=True)
class LaunchEvent:
    """One observation about a launched task.

    Attributes:
        kind: what happened.
        key: the task-instance try it concerns.
        pod_name: the pod (``""`` when the pod was never created).
        namespace: the pod's namespace.
        reason: human-readable cause for ``FAILED`` and ``RELEASED``; ``""`` otherwise.
        node: node the pod runs on, when known.
        gpu_uuids: GPUs the stage holds, when known.
    """

    kind: EventKind
    key: TaskKey
    pod_name: str
    namespace: str
    reason: str = ""
    node: str | None = None
    gpu_uuids: tuple[str, ...] = field(default=())
