"""The GPU-worker pool: which worker (pod) serves a GPU set, decided without an API server.

With ``kubernetes_mode = worker-pods`` one long-lived worker holds each GPU set in use
(one GPU, or a shard group on one node) and keeps what its device worker loaded. The
rules are the ones `airflow_fate.state.cluster_state.ClusterState` prices (ADR 0008), so
the planner's predictions and the pods agree:

* **reuse**: a live worker for exactly the GPU set takes the stage; a model it must
  make room for is evicted inside the worker, LRU within its memory, as the state's
  `_load` does (no pod is replaced for an eviction);
* **create**: otherwise a new, empty worker is started for the set;
* **replace**: workers holding some of those GPUs for another set are deleted first,
  with everything they held, but never under a running stage: while one of them runs
  a task the stage **waits** (the planner only launches on GPUs it believes free, so this
  covers the short gap until the launcher sees the task's end);
* **expire**: a worker with no task for longer than ``idle_s`` is deleted.

`WorkerPool` is pure bookkeeping plus these decisions; the backend acts on them (pods,
claims, agents) and reports back what it observed (`created`, `ready`, `gone`, ...).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from airflow_fate.launch.types import GpuPlacement, TaskKey

GpuSet = tuple[str, tuple[int, ...]]
"""``(node name, node-local GPU indices)``: the GPUs one worker holds."""


def gpu_set(placement: GpuPlacement) -> GpuSet:
    """The GPU set a placement names (indices in the placement's order)."""
    return placement.node, placement.gpu_indices


def overlaps(a: GpuSet, b: GpuSet) -> bool:
    """Whether two GPU sets share a GPU."""
    return a[0] == b[0] and bool(set(a[1]) & set(b[1]))


class WorkerPhase(StrEnum):
    STARTING = "starting"
    """Created; its agent has not answered yet."""
    READY = "ready"
    """Its agent answers: tasks can be handed to it."""
    DELETING = "deleting"
    """Deletion asked for; it takes no more work."""


@dataclass
class Worker:
    """One worker of the pool.

    Attributes:
        name: the pod's name.
        gpus: the GPU set it holds.
        phase: see `WorkerPhase`.
        since: when it was created (or adopted), launcher clock.
        idle_since: when its last task ended (or it became ready with none).
        tasks: task tries it runs now.
    """

    name: str
    gpus: GpuSet
    phase: WorkerPhase
    since: float
    idle_since: float
    tasks: set[TaskKey] = field(default_factory=set)

    @property
    def busy(self) -> bool:
        return bool(self.tasks)


@dataclass(frozen=True, slots=True)
class Reuse:
    """Hand the stage to the live worker ``name`` (it holds exactly the GPU set)."""

    name: str


@dataclass(frozen=True, slots=True)
class Create:
    """Start a worker for ``gpus``, deleting the idle workers ``replaces`` first."""

    gpus: GpuSet
    replaces: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Wait:
    """Not now: ``blockers`` hold some of the GPUs (running a task, or still going away)."""

    blockers: tuple[str, ...]


Decision = Reuse | Create | Wait


class WorkerPool:
    """Workers by GPU set, and the lifecycle decisions of the module docstring.

    Args:
        idle_s: a worker with no task for longer than this expires (``[fate]
            worker_idle_s``).
    """

    def __init__(self, idle_s: float) -> None:
        if idle_s <= 0:
            raise ValueError(f"idle_s must be > 0, got {idle_s}")
        self.idle_s = idle_s
        self._workers: dict[str, Worker] = {}

    # -- reading -----------------------------------------------------------------------

    def __iter__(self) -> Iterator[Worker]:
        return iter(list(self._workers.values()))

    def __len__(self) -> int:
        return len(self._workers)

    def get(self, name: str) -> Worker | None:
        return self._workers.get(name)

    def holding(self, gpus: GpuSet) -> Worker | None:
        """The worker for exactly ``gpus`` that still takes work, if any."""
        for w in self._workers.values():
            if w.gpus == gpus and w.phase is not WorkerPhase.DELETING:
                return w
        return None

    def running(self, key: TaskKey) -> Worker | None:
        """The worker that runs ``key``, if any."""
        return next((w for w in self._workers.values() if key in w.tasks), None)

    # -- deciding ----------------------------------------------------------------------

    def place(self, gpus: GpuSet) -> Decision:
        """Where a stage for ``gpus`` goes now (nothing changes until the caller acts)."""
        exact = self.holding(gpus)
        if exact is not None:
            return Reuse(exact.name)
        others = [w for w in self._workers.values() if overlaps(w.gpus, gpus)]
        blockers = [w.name for w in others if w.busy or w.gpus == gpus]
        if blockers:
            # A busy worker is never deleted under its task; a worker for this very set
            # that is going away still holds its name (and, with DRA, its claim).
            return Wait(tuple(sorted(blockers)))
        live = [w.name for w in others if w.phase is not WorkerPhase.DELETING]
        return Create(gpus, tuple(sorted(live)))

    def expired(self, now: float) -> list[str]:
        """Idle workers past ``idle_s`` (to delete), oldest first."""
        out = [
            w
            for w in self._workers.values()
            if w.phase is WorkerPhase.READY and not w.busy and now - w.idle_since > self.idle_s
        ]
        return [w.name for w in sorted(out, key=lambda w: (w.idle_since, w.name))]

    def stuck(self, now: float, start_timeout_s: float) -> list[str]:
        """Workers still starting after ``start_timeout_s`` (to delete and fail)."""
        return sorted(
            w.name
            for w in self._workers.values()
            if w.phase is WorkerPhase.STARTING and now - w.since > start_timeout_s
        )

    # -- recording what happened ---------------------------------------------------------

    def created(self, name: str, gpus: GpuSet, now: float) -> Worker:
        """A worker was created (or found, after a restart) and is not ready yet."""
        worker = Worker(name, gpus, WorkerPhase.STARTING, since=now, idle_since=now)
        self._workers[name] = worker
        return worker

    def ready(self, name: str, now: float) -> None:
        """Its agent answered; from now on idle time counts."""
        w = self._workers.get(name)
        if w is not None and w.phase is WorkerPhase.STARTING:
            w.phase = WorkerPhase.READY
            if not w.busy:
                w.idle_since = now

    def deleting(self, names: Iterable[str]) -> None:
        for name in names:
            w = self._workers.get(name)
            if w is not None:
                w.phase = WorkerPhase.DELETING

    def gone(self, name: str) -> Worker | None:
        """The worker no longer exists; returns it (with the tasks it still ran)."""
        return self._workers.pop(name, None)

    def task_started(self, name: str, key: TaskKey) -> None:
        self._workers[name].tasks.add(key)

    def task_ended(self, key: TaskKey, now: float) -> Worker | None:
        """``key`` ended on its worker (which is returned); the worker's idle time starts."""
        w = self.running(key)
        if w is None:
            return None
        w.tasks.discard(key)
        if not w.busy:
            w.idle_since = now
        return w
