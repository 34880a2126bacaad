"""The one launcher protocol and the messages launchers take and return.

Decide, act, observe: the caller (live engine, executor) decides where work runs and
calls `Launcher.launch`; `Launcher.poll` returns what happened since, as small immutable
events. The protocol is generic over what is launched, so two families of messages share
it, as Airflow keeps one `BaseExecutor` for every backend:

* stages for the live engine (`StageLaunch` in, `StageEvent` out, keyed by a string);
  a launched stage ends in exactly one `StageSucceeded` or `StageFailed`;
* Airflow tasks for the executor (`LaunchRequest` in, `LaunchEvent` out, keyed by
  `TaskKey`), whether they run as local processes or as Kubernetes pods.

Nothing here imports Kubernetes, Airflow or torch, so every backend, the executor and
the tests share these types; backend-specific types stay in the backend's package.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, TypeVar

from airflow_fate.runtime.protocol import FailureReason, StageRequest, StageResult


@dataclass(frozen=True, slots=True)
class StageLaunch:
    """Run ``request`` on ``devices`` (global GPU indices of the cluster, one node).

    Attributes:
        key: unique id of this stage run (``workflow/stage`` in the live engine).
        devices: the GPU set the planner chose.
        request: the work, in the runtime protocol.
        timeout_s: the stage fails with ``timeout`` if it has not finished this many
            seconds after it starts running (queueing time is not counted).
    """

    key: str
    devices: tuple[int, ...]
    request: StageRequest
    timeout_s: float = 600.0


@dataclass(frozen=True, slots=True)
class StageRunning:
    """A device worker began the stage (``at``: launcher clock, monotonic seconds)."""

    key: str
    at: float


@dataclass(frozen=True, slots=True)
class StageSucceeded:
    key: str
    at: float
    result: StageResult


@dataclass(frozen=True, slots=True)
class StageFailed:
    """The stage did not complete; ``message`` says why in words a user can act on."""

    key: str
    at: float
    reason: FailureReason
    message: str


@dataclass(frozen=True, slots=True)
class WorkerRestarted:
    """A device worker was replaced (after a crash, an out-of-memory, a cancel)."""

    devices: tuple[int, ...]
    at: float
    cause: str


StageEvent = StageRunning | StageSucceeded | StageFailed | WorkerRestarted
"""What a stage launcher (the live engine's) reports."""


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
    """Everything a task launcher needs to start one stage task (a pod or a local process).

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
    """What a task launcher's `poll` can report about a task."""

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
        pod_name: the pod, or ``pid-N`` for a local process (``""`` when none was
            created).
        namespace: the pod's namespace (``local`` for a local process).
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


@dataclass(frozen=True, slots=True)
class DevicesLost:
    """The worker that held ``node``'s GPUs ``gpu_indices`` is gone, and with it what it
    held (models, prefix KV): a worker pod deleted, evicted, OOM-killed or on a lost node,
    a pod expired, a device worker restarted. The caller drops that state from its plan.

    It follows the ``FAILED`` events of the tasks that ran there.
    """

    node: str
    gpu_indices: tuple[int, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class WorkerStarted:
    """A worker pod for ``node``'s GPUs ``gpu_indices`` took work ``seconds`` after it was
    asked for: a measured pod start, which corrects the cost model's ``pod_start_s``."""

    node: str
    gpu_indices: tuple[int, ...]
    seconds: float


TaskEvent = LaunchEvent | DevicesLost | WorkerStarted
"""What a task launcher (the executor's) reports."""


RequestT = TypeVar("RequestT", contravariant=True)
KeyT = TypeVar("KeyT")
EventT = TypeVar("EventT")


class Launcher(Protocol[RequestT, KeyT, EventT]):
    """Starts work on devices and reports its progress.

    Callers ask the launcher what it does on close (`keeps_tasks_on_close`) and which
    devices kept their state (`live_devices`) instead of checking which backend it is.
    """

    @property
    def keeps_tasks_on_close(self) -> bool:
        """Whether launched work keeps running after `close` (pods do; processes stop)."""
        ...

    def start(self) -> None:
        """Create clients and start workers; called once, never at construction."""
        ...

    def launch(self, request: RequestT) -> None:
        """Queue ``request`` on its devices; it starts when they are free."""
        ...

    def poll(self, timeout_s: float = 0.0) -> list[EventT]:
        """Events since the last call, waiting up to ``timeout_s`` for the first one."""
        ...

    def cancel(self, key: KeyT) -> None:
        """Stop queued or running work; it ends with a failure event."""
        ...

    def adopt(self, keys: Sequence[KeyT]) -> list[KeyT]:
        """Take over work started by an earlier launcher; returns the keys adopted."""
        ...

    def live_devices(self) -> set[int]:
        """Global GPU indices whose worker survived from an earlier launcher, so what it
        held (models, prefix KV) is still resident; empty where nothing survives."""
        ...

    def held_models(self) -> dict[tuple[int, ...], tuple[str, ...]] | None:
        """What each surviving worker says it holds, by global GPU set (the truth after a
        restart); None where the backend cannot ask its workers, so the caller trusts
        what it recorded for `live_devices`."""
        ...

    def close(self, *, detach: bool = False) -> None:
        """Stop watching; stop every worker too unless ``detach`` leaves them for adoption.

        Outstanding work is abandoned without events.
        """
        ...


StageLauncher = Launcher[StageLaunch, str, StageEvent]
"""The live engine's launcher: stages on device workers."""

TaskLauncher = Launcher[LaunchRequest, TaskKey, TaskEvent]
"""The executor's launcher: Airflow tasks as local processes, pods, or on worker pods."""
