"""What the executor and a worker pod's task agent say to each other (JSON over HTTP).

The agent's configuration (`AgentConfig`) is fixed when the pod is built and reaches the
agent as JSON in its environment; requests and answers are small strict models, so
either side refuses anything malformed with a message naming the field.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from airflow_fate.launch.types import TaskKey
from airflow_fate.runtime.binding import DeviceBinding

PROTOCOL_VERSION = 1
CONFIG_ENV = "FATE_AGENT_CONFIG"
"""The pod's environment variable holding the `AgentConfig` JSON."""
SECRET_ENV = "FATE_AGENT_SECRET"
"""The pod's environment variable with the shared secret (from the Kubernetes Secret).
The agent removes it from its environment at start, so no task process inherits it."""
HOST_ENV = "FATE_AGENT_HOST"
"""The address to listen on (the pod's IP, from the downward API); default all."""


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentConfig(_Message):
    """A worker pod's identity and the device worker it runs.

    Attributes:
        pod: the pod's name (answers name it, so a misrouted request is visible).
        node: the node the pod is pinned to.
        gpu_indices: node-local indices of its GPUs (as in ``cluster.yaml``).
        gpu_uuids: their UUIDs, same order.
        binding: the device worker's devices and memory budgets (the planner's figures).
        port: the port the agent listens on.
        work_dir: sockets, pid files and logs inside the pod.
        stage_timeout_s: how long a stage may run on the device worker.
    """

    pod: str = Field(min_length=1)
    node: str = Field(min_length=1)
    gpu_indices: list[int] = Field(min_length=1)
    gpu_uuids: list[str] = Field(min_length=1)
    binding: DeviceBinding
    port: int = Field(ge=1, le=65535)
    work_dir: str = Field(default="/tmp/airflow-fate-agent", min_length=1)
    stage_timeout_s: float = Field(default=600.0, gt=0)

    @property
    def pod_dir(self) -> str:
        """This pod's own directory under ``work_dir`` (pods may share a host path)."""
        return f"{self.work_dir.rstrip('/')}/{self.pod}"


class WireKey(_Message):
    """A `TaskKey` on the wire."""

    dag_id: str = Field(min_length=1)
    task_id: str = Field(min_length=1)
    run_id: str = Field(min_length=1)
    try_number: int = Field(ge=0)
    map_index: int = Field(default=-1, ge=-1)

    @classmethod
    def of(cls, key: TaskKey) -> WireKey:
        return cls(
            dag_id=key.dag_id,
            task_id=key.task_id,
            run_id=key.run_id,
            try_number=key.try_number,
            map_index=key.map_index,
        )

    def task_key(self) -> TaskKey:
        return TaskKey(self.dag_id, self.task_id, self.run_id, self.try_number, self.map_index)


class TaskSubmission(_Message):
    """Run one Airflow task try in the pod (``command`` as `airflow_task_command` builds it)."""

    key: WireKey
    command: list[str] = Field(min_length=1)
    env: dict[str, str] = Field(default_factory=dict)


class TaskKeys(_Message):
    """Task tries to cancel, or whose reported exits the executor has consumed."""

    keys: list[WireKey]


class TaskReport(_Message):
    """One task process of the agent: running, or how it ended.

    ``exit_code`` is the process's (negative: killed by that signal); like a local task's,
    it is not the task's outcome, which the executor reads from Airflow's database.
    """

    key: WireKey
    pid: int
    running: bool
    exit_code: int | None = None
    seconds: float = Field(ge=0)


class WorkerReport(_Message):
    """The pod's device worker as the agent sees it.

    Attributes:
        alive: whether the process runs.
        pid: its pid, if started.
        restarts: how often the agent had to start it again (each restart lost what the
            previous process held).
        resident: model names it reported holding at ``checked_at``.
        checked_at: agent clock (seconds since the agent started) of that report; None
            when the worker was never idle long enough to ask.
        current: whether ``resident`` is what the worker holds now: asked since the last
            task started or ended, and no task runs (a running stage may load or evict).
    """

    alive: bool
    pid: int | None = None
    restarts: int = Field(default=0, ge=0)
    resident: list[str] = Field(default_factory=list)
    checked_at: float | None = None
    current: bool = False


class AgentState(_Message):
    """What a worker pod holds and runs: the answer to every agent request."""

    protocol: int = PROTOCOL_VERSION
    pod: str
    node: str
    gpu_indices: list[int]
    gpu_uuids: list[str]
    worker: WorkerReport
    tasks: list[TaskReport] = Field(default_factory=list)

    def task(self, key: TaskKey) -> TaskReport | None:
        wire = WireKey.of(key)
        return next((t for t in self.tasks if t.key == wire), None)
