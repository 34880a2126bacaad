"""`FrontierPlanner`: Airflow task instances in, placements out, through the shared spine.

The executor's decision logic without Airflow: it owns the `ClusterState` and drives the
same `Dispatcher`, `CostModel` and policy as the simulator (ADR 0001). What it adds is
the mapping between Airflow's world and the planner's:

- a DAG run becomes a workflow when the executor first meets it (`add_run`), with every
  stage of the run, so the look-ahead sees stages Airflow has not queued yet;
- a queued task is *offered*; only offered stages form the frontier (`Dispatcher.decide`
  with ``eligible``), because a stage whose stage-parents are done may still wait on a
  CPU task or a trigger rule;
- a task Airflow queues again after its stage ran (a retry, a reschedule), a mapped task,
  or a task whose stage-parents will never run (a skipped branch) is planned as a
  *detached* one-stage workflow, since the state runs each stage once;
- a placed stage is launched when it heads its GPUs' queues (`startable`); one whose
  task was withdrawn meanwhile passes through the state with zero time;
- finished DAG runs leave the graph and the state (`FORGET_AFTER`): a run's workflow is
  finished when every stage of it has, or when Airflow says the run is over
  (`close_runs`) and nothing of it is queued or running. Memory is then bounded by the
  live runs, however long the scheduler runs.

Time is seconds on the executor's monotonic clock; the store keeps wall-clock times.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass

from airflow_fate.cost.estimator import CostModel
from airflow_fate.cost.pod_start import PodStartCorrection
from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.graph import WorkloadGraph
from airflow_fate.domain.models import ModelCatalog
from airflow_fate.domain.plan import DecisionRecord, StageCost
from airflow_fate.domain.workload import WorkflowSpec
from airflow_fate.executor.layout import RunLayout
from airflow_fate.launch.types import TaskKey
from airflow_fate.operators.metadata import StageMetadata
from airflow_fate.planner.policy import Policy
from airflow_fate.spine.dispatch import Dispatcher
from airflow_fate.state.cluster_state import (
    ClusterState,
    StageAssigned,
    StageStarted,
)
from airflow_fate.state.hosting import Hosting

FORGET_AFTER = 64
"""Finished workflows that may pile up before they are forgotten together (and never
fewer than there are live ones). Forgetting renumbers every live stage and restarts the
policy from its pristine copy, so it is batched: the cost is amortised over this many
runs, and the policy's learned demand rates start again from the live runs."""

RunId = tuple[str, str]
"""A DAG run: ``(dag_id, run_id)``."""

StageRef = tuple[str, str, str, int]
"""A task of a DAG run across its tries: ``(dag_id, run_id, task_id, map_index)``."""


def stage_ref(key: TaskKey) -> StageRef:
    return (key.dag_id, key.run_id, key.task_id, key.map_index)


@dataclass(frozen=True, slots=True)
class Placement:
    """A stage to launch now: where, and what the planner predicted.

    Attributes:
        key: the Airflow task-instance try.
        uid: the stage's id in the planner's graph.
        node: node name; ``node_index`` its index in the cluster.
        gpus: global GPU indices; ``local_gpus`` the same GPUs' indices on the node.
        predicted: the cost model's breakdown at start (wait 0).
        record: the policy's "why here" (score, future terms, runner-up), if it gave one.
        reused_prefix_tokens: prompt tokens whose prefix KV the cost model expects the
            GPUs to hold at start (0: the system prompt is prefilled from scratch).
    """

    key: TaskKey
    uid: int
    node: str
    node_index: int
    gpus: tuple[int, ...]
    local_gpus: tuple[int, ...]
    predicted: StageCost
    record: DecisionRecord | None
    reused_prefix_tokens: int = 0


class FrontierPlanner:
    """Plans queued Airflow tasks with a policy over one `ClusterState`."""

    def __init__(
        self,
        cluster: Cluster,
        catalog: ModelCatalog,
        policy: Policy,
        cost: CostModel,
        *,
        hosting: Hosting | None = None,
    ) -> None:
        self.cluster = cluster
        self.catalog = catalog
        self.state = ClusterState(
            cluster,
            catalog,
            WorkloadGraph(stages=(), workflows=()),
            hosting=hosting,
        )
        self.dispatch = Dispatcher(self.state, cost, policy)
        self._pristine_policy = copy.deepcopy(policy)  # before it caches anything
        self._run_of: dict[int, RunId] = {}
        self._done: set[int] = set()
        self._closed: set[RunId] = set()
        self.forgotten = 0
        """Workflows forgotten so far."""
        self._runs: dict[tuple[str, str], RunLayout] = {}
        self._uids: dict[StageRef, int] = {}
        self._offered: dict[int, TaskKey] = {}
        self._metadata: dict[int, StageMetadata] = {}
        self._reserved: dict[int, TaskKey] = {}
        self._running: dict[TaskKey, int] = {}
        self._doomed: set[int] = set()
        self._detached = 0
        self._dirty = False
        self._wake_at: float | None = None
        self._pod_start: PodStartCorrection | None = None

    # -- reading ---------------------------------------------------------------------

    @property
    def policy_name(self) -> str:
        return self.dispatch.policy.name

    def has_run(self, dag_id: str, run_id: str) -> bool:
        return (dag_id, run_id) in self._runs

    def layout(self, dag_id: str, run_id: str) -> RunLayout:
        """The layout a run was added with (empty for an unknown run)."""
        return self._runs.get((dag_id, run_id)) or RunLayout()

    def rejection(self, key: TaskKey) -> str | None:
        """Why this task's stage cannot be planned (from its run's layout), or None."""
        layout = self._runs.get((key.dag_id, key.run_id))
        return None if layout is None else layout.rejected.get(key.task_id)

    def is_offered(self, key: TaskKey) -> bool:
        return key in self._offered.values() or key in self._reserved.values()

    def running_uid(self, key: TaskKey) -> int | None:
        return self._running.get(key)

    def pending(self) -> int:
        """Offered or reserved tasks not launched yet."""
        return len(self._offered) + len(self._reserved)

    def busy_gpus(self) -> int:
        """GPUs running a stage now (reserved GPUs waiting for their stage are not busy)."""
        gpus = range(len(self.cluster.gpus))
        return sum(1 for g in gpus if self.state.gpu(g).running is not None)

    # -- runs ------------------------------------------------------------------------

    def add_run(self, dag_id: str, run_id: str, layout: RunLayout, now: float) -> None:
        """Make a DAG run's stages known (all of them: the look-ahead needs the future)."""
        if (dag_id, run_id) in self._runs:
            return
        self._runs[(dag_id, run_id)] = layout
        if not layout.stages:
            return
        wf = layout.workflow(f"{dag_id}/{run_id}", dag_id, now)
        index = self._append(wf, now, (dag_id, run_id))
        for uid in self.state.graph.workflows[index].stages:
            task_id = self.state.graph.stages[uid].stage_id
            self._uids[(dag_id, run_id, task_id, -1)] = uid
        self._dirty = True

    def _append(self, wf: WorkflowSpec, now: float, run: RunId) -> int:
        self.state.extend_graph(self.state.graph.extend([wf], self.catalog))
        index = len(self.state.graph.workflows) - 1
        self._run_of[index] = run
        self.dispatch.arrive(index, now)
        return index

    def _detach(self, key: TaskKey, metadata: StageMetadata, now: float) -> int:
        """A one-stage workflow for a task the run's workflow cannot host (see module doc)."""
        self._detached += 1
        mapped = f"[{key.map_index}]" if key.map_index >= 0 else ""
        wf = WorkflowSpec(
            id=f"{key.dag_id}/{key.run_id}/{key.task_id}{mapped}#{self._detached}",
            template=key.dag_id,
            arrival_s=now,
            stages=[metadata.stage_spec(key.task_id, [])],
        )
        index = self._append(wf, now, (key.dag_id, key.run_id))
        uid = self.state.graph.workflows[index].stages[0]
        self._uids[stage_ref(key)] = uid
        return uid

    # -- tasks -----------------------------------------------------------------------

    def offer(self, key: TaskKey, metadata: StageMetadata, now: float) -> None:
        """Airflow queued ``key``: plan it from now on (idempotent)."""
        if self.is_offered(key) or key in self._running:
            return
        uid = self._uids.get(stage_ref(key))
        fresh = (
            uid is not None
            and self.state.placement_of(uid) is None
            and uid not in self._offered
            and self._same_stage(uid, metadata)
        )
        if uid is None or not fresh:
            uid = self._detach(key, metadata, now)
        self._offered[uid] = key
        self._metadata[uid] = metadata
        self._dirty = True

    def _same_stage(self, uid: int, metadata: StageMetadata) -> bool:
        s = self.state.graph.stages[uid]
        return s.model == metadata.model and s.input_tokens == metadata.input_tokens

    def withdraw(self, key: TaskKey) -> None:
        """Airflow took ``key`` back before it started (revoked or stuck in queued)."""
        for uid, k in list(self._offered.items()):
            if k == key:
                del self._offered[uid]
                self._metadata.pop(uid, None)
        for uid, k in list(self._reserved.items()):
            if k == key:
                self._doomed.add(uid)
        self._dirty = True

    def decide(self, now: float) -> list[Placement]:
        """Plan the offered frontier when something changed; the stages to launch now."""
        self.state.now = max(self.state.now, now)
        self._forget_finished()
        if self._wake_at is not None and now >= self._wake_at:
            self._wake_at = None
            self._dirty = True
        if self._dirty:
            self._dirty = False
            self._rehome_blocked(now)
            eligible = [u for u in self._offered if u in self.state.ready]
            plan = self.dispatch.decide(now, eligible) if eligible else None
            if plan is not None:
                for a in plan.assignments:
                    self._reserved[a.stage] = self._offered.pop(a.stage)
                    self._metadata.pop(a.stage, None)
                if plan.wake_at is not None and plan.wake_at > now:
                    self._wake_at = plan.wake_at
        return self._start_heads(now)

    def _rehome_blocked(self, now: float) -> None:
        """Detach offered stages waiting on a stage-parent that will never run here."""
        stages = self.state.graph.stages
        waiting = set(self._offered) | set(self._reserved)
        for uid, key in list(self._offered.items()):
            if uid in self.state.ready:
                continue
            if any(
                self.state.placement_of(p) is None and p not in waiting for p in stages[uid].parents
            ):
                metadata = self._metadata.pop(uid)
                del self._offered[uid]
                new = self._detach(key, metadata, now)
                self._offered[new] = key
                self._metadata[new] = metadata

    def _start_heads(self, now: float) -> list[Placement]:
        out: list[Placement] = []
        every = list(range(len(self.cluster.gpus)))
        while heads := self.dispatch.startable(every):
            for uid in heads:
                key = self._reserved.pop(uid)
                if uid in self._doomed:
                    self._doomed.discard(uid)
                    self.dispatch.started(uid, now)
                    self.dispatch.finished(uid, now, 0.0)
                    self._note_finished(uid)
                    continue
                out.append(self._start(uid, key, now))
        return out

    def _start(self, uid: int, key: TaskKey, now: float) -> Placement:
        stage = self.state.graph.stages[uid]
        gpus = self.state.placement_of(uid)
        assert gpus is not None
        snap = self.state.snapshot()
        predicted = self.dispatch.cost.run_cost(stage, gpus, snap)
        reused = self.dispatch.cost.reused_tokens(stage, gpus, snap)
        record = self.dispatch.records.pop(uid, None)
        self.dispatch.started(uid, now)
        self._running[key] = uid
        return self._placement(key, uid, gpus, predicted, record, reused)

    def _placement(
        self,
        key: TaskKey,
        uid: int,
        gpus: tuple[int, ...],
        predicted: StageCost,
        record: DecisionRecord | None,
        reused_prefix_tokens: int = 0,
    ) -> Placement:
        refs = [self.cluster.gpus[g] for g in gpus]
        node = refs[0].node
        return Placement(
            key=key,
            uid=uid,
            node=self.cluster.nodes[node].name,
            node_index=node,
            gpus=gpus,
            local_gpus=tuple(r.local for r in refs),
            predicted=predicted,
            record=record,
            reused_prefix_tokens=reused_prefix_tokens,
        )

    def finish(self, key: TaskKey, now: float, run_s: float) -> tuple[int, ...] | None:
        """A launched stage ended (either way); its GPUs, now free (None if unknown)."""
        uid = self._running.pop(key, None)
        if uid is None:
            return None
        self._dirty = True
        gpus = self.dispatch.finished(uid, now, run_s)
        self._note_finished(uid)
        return gpus

    def observe_pod_start(self, seconds: float) -> float:
        """A worker pod started in ``seconds``: correct the pod start figure; the new one."""
        if self._pod_start is None:
            self._pod_start = PodStartCorrection(self.state.hosting.pod_start_s)
        corrected = self._pod_start.observe(seconds)
        self.state.correct_pod_start(corrected)
        self._dirty = True
        return corrected

    def drop_worker(self, gpus: tuple[int, ...]) -> None:
        """The worker on ``gpus`` is gone with what it held (a worker pod lost mid-run)."""
        self.state.drop_worker(gpus)
        self._dirty = True

    # -- forgetting finished runs ----------------------------------------------------

    def open_runs(self) -> list[RunId]:
        """Runs still known here that Airflow has not been seen to finish."""
        return [run for run in self._runs if run not in self._closed]

    def close_runs(self, runs: Iterable[RunId]) -> None:
        """Airflow finished these runs: forget them once nothing of theirs is active."""
        self._closed.update(run for run in runs if run in self._runs)

    def live_workflows(self) -> int:
        """Workflows in the graph now (finished ones not yet forgotten included)."""
        return len(self.state.graph.workflows)

    def _note_finished(self, uid: int) -> None:
        graph = self.state.graph
        wf = graph.stages[uid].workflow
        if all(self.state.is_finished(u) for u in graph.workflows[wf].stages):
            self._done.add(wf)

    def _forget_finished(self) -> None:
        """Forget finished workflows once enough have piled up (see `FORGET_AFTER`)."""
        if len(self._done) + len(self._closed) < FORGET_AFTER:
            return
        gone = self._done | self._closed_idle()
        if len(gone) < max(FORGET_AFTER, len(self.state.graph.workflows) - len(gone)):
            return
        moved = self.dispatch.forget(gone, copy.deepcopy(self._pristine_policy))
        s, w = moved.stages, moved.workflows
        self._uids = {ref: s[u] for ref, u in self._uids.items() if u in s}
        self._offered = {s[u]: key for u, key in self._offered.items()}
        self._metadata = {s[u]: m for u, m in self._metadata.items()}
        self._reserved = {s[u]: key for u, key in self._reserved.items()}
        self._running = {key: s[u] for key, u in self._running.items()}
        self._doomed = {s[u] for u in self._doomed}
        left = {run for x, run in self._run_of.items() if x not in w}
        self._run_of = {w[x]: run for x, run in self._run_of.items() if x in w}
        drop = (left | self._closed) - set(self._run_of.values())
        self._runs = {run: layout for run, layout in self._runs.items() if run not in drop}
        self._closed -= drop
        self._done = set()
        self.forgotten += len(gone)
        self._dirty = True

    def _closed_idle(self) -> set[int]:
        """Workflows of closed runs with nothing offered, reserved or running."""
        if not self._closed:
            return set()
        active = set(self._offered) | set(self._reserved) | set(self._running.values())
        stages = self.state.graph.workflows
        return {
            x
            for x, run in self._run_of.items()
            if run in self._closed and not active.intersection(stages[x].stages)
        }

    # -- restoring a previous scheduler's state --------------------------------------

    def adopt_worker(self, gpus: tuple[int, ...]) -> None:
        """A worker that outlived a restart holds exactly ``gpus`` (`ClusterState.adopt_worker`)."""
        self.state.adopt_worker(gpus)
        self._dirty = True

    def preload(self, model: str, gpus: tuple[int, ...]) -> None:
        """Mark ``model`` resident on ``gpus`` (a device that kept it across restarts)."""
        if model in self.catalog.models:
            self.state.preload(model, gpus)

    def replay(self, key: TaskKey, gpus: tuple[int, ...], now: float, run_s: float) -> bool:
        """Record that ``key``'s stage already ran on ``gpus`` (its output lives there).

        Only stages of known runs whose stage-parents are done can be replayed; call in
        the order the stages started. Returns whether it was recorded.
        """
        uid = self._uids.get(stage_ref(key))
        if uid is None or uid not in self.state.ready or not self._idle(gpus):
            return False
        self._occupy(uid, gpus, now)
        self.dispatch.finished(uid, now, run_s)
        self._note_finished(uid)
        return True

    def adopt(
        self, key: TaskKey, metadata: StageMetadata, gpus: tuple[int, ...], now: float
    ) -> Placement | None:
        """Take over a stage a previous scheduler launched and that still runs on ``gpus``."""
        if key in self._running or not self._idle(gpus):
            return None
        uid = self._uids.get(stage_ref(key))
        if uid is None or uid not in self.state.ready:
            uid = self._detach(key, metadata, now)
        stage = self.state.graph.stages[uid]
        predicted = self.dispatch.cost.run_cost(stage, gpus, self.state.snapshot())
        self._occupy(uid, gpus, now)
        self._running[key] = uid
        return self._placement(key, uid, gpus, predicted, None)

    def _idle(self, gpus: tuple[int, ...]) -> bool:
        return (
            all(
                0 <= g < len(self.cluster.gpus)
                and self.state.gpu(g).running is None
                and not self.state.gpu(g).pending
                for g in gpus
            )
            and len({self.cluster.gpus[g].node for g in gpus}) == 1
        )

    def _occupy(self, uid: int, gpus: tuple[int, ...], now: float) -> None:
        est = self.dispatch.cost.run_cost(self.state.graph.stages[uid], gpus, self.state.snapshot())
        self.state.apply(StageAssigned(uid, gpus, now, est.run))
        self.state.apply(StageStarted(uid, now))
