"""Static list scheduling of a whole workflow at its arrival (HEFT family), run online.

Classical DAG schedulers plan every stage of a DAG up front: an order (a rank), then for
each stage the processor (here: a candidate GPU group) and start time, inserting into
idle gaps of a per-GPU timeline. `ListSchedule` holds that timeline across workflows, so
the family runs online: each arriving workflow is planned against the gaps the earlier
ones left and against the GPUs' real backlog.

A stage's cost on group G is its state-conditional run time from the shared cost model
at the workflow's arrival (model load from the best tier, prefill after any warm prefix,
decode), with earlier stages of the same plan counted as having loaded their models; a
parent's output adds ``transfer(bytes, parent group, G)`` to the child's run on G, as
inputs are pulled when a stage starts.

Execution keeps the plan's order: a ready stage is released only when every stage
planned earlier on its GPUs has been released, so a later-planned stage never jumps a
gap it was not planned into. With exact costs the simulator reproduces the plan.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.graph import StageInfo
from airflow_fate.domain.plan import Assignment, DecisionRecord, Plan, StageCost
from airflow_fate.planner.candidates import aligned_blocks
from airflow_fate.state.cluster_state import Snapshot


def processor_groups(stage: StageInfo, snap: Snapshot, cost: CostModel) -> list[tuple[int, ...]]:
    """The "processors" of list scheduling: single GPUs and aligned shard blocks."""
    out: list[tuple[int, ...]] = []
    for node, node_gpus in enumerate(snap.cluster.node_gpus):
        for k in cost.degrees(stage, node):
            out.extend(aligned_blocks(node_gpus, k))
    return out


@dataclass
class Timeline:
    """Busy intervals per GPU, sorted by start: ``starts[g]`` and ``ends[g]``."""

    starts: list[list[float]]
    ends: list[list[float]]

    @classmethod
    def empty(cls, n: int) -> Timeline:
        return cls([[] for _ in range(n)], [[] for _ in range(n)])

    def prune(self, before: float) -> None:
        """Forget intervals that ended before ``before``."""
        for g in range(len(self.starts)):
            ends = self.ends[g]
            cut = 0
            while cut < len(ends) and ends[cut] < before:
                cut += 1
            if cut:
                del self.starts[g][:cut]
                del self.ends[g][:cut]

    def earliest_fit(self, gpus: Sequence[int], ready: float, duration: float) -> float:
        """Earliest t >= ready with [t, t + duration) idle on every GPU of ``gpus``."""
        t = ready
        moved = True
        while moved:
            moved = False
            for g in gpus:
                starts, ends = self.starts[g], self.ends[g]
                i = bisect.bisect_right(ends, t)
                while i < len(starts) and starts[i] < t + duration:
                    t = ends[i]
                    moved = True
                    i += 1
        return t

    def add(self, gpus: Sequence[int], start: float, end: float) -> None:
        for g in gpus:
            i = bisect.bisect_left(self.starts[g], start)
            self.starts[g].insert(i, start)
            self.ends[g].insert(i, end)


@dataclass(frozen=True, slots=True)
class Slot:
    """One planned stage: where and when, with its predicted cost."""

    gpus: tuple[int, ...]
    start: float
    end: float
    cost: StageCost


@dataclass
class ListSchedule:
    """Timeline, planned slots and release order shared by the HEFT-family policies."""

    n_gpus: int
    timeline: Timeline = field(init=False)
    slots: dict[int, Slot] = field(default_factory=dict)
    order: list[list[tuple[float, int]]] = field(init=False)
    released: set[int] = field(default_factory=set)
    planned_workflows: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.timeline = Timeline.empty(self.n_gpus)
        self.order = [[] for _ in range(self.n_gpus)]

    def block_backlog(self, snap: Snapshot) -> None:
        """Drop finished history and mark each GPU's real backlog as busy."""
        self.timeline.prune(snap.now)
        for g, st in enumerate(snap.gpus):
            if st.busy_until > snap.now and not self.timeline.ends[g]:
                self.timeline.add((g,), snap.now, st.busy_until)

    def new_workflows(self, snap: Snapshot) -> list[int]:
        stages = snap.graph.stages
        fresh = sorted({stages[u].workflow for u in snap.frontier} - self.planned_workflows)
        self.planned_workflows.update(fresh)
        return fresh

    def stage_cost(
        self, stage: StageInfo, group: tuple[int, ...], snap: Snapshot, cost: CostModel
    ) -> StageCost:
        """Run cost on ``group`` with inputs pulled from the parents' planned groups."""
        run = cost.run_cost(stage, group, snap)
        transfer = 0.0
        for p in stage.parents:
            src = self.slots[p].gpus if p in self.slots else snap.placement.get(p)
            if src is not None:
                transfer += cost.transfer_time(snap.graph.stages[p].output_bytes, src, group)
        return StageCost(0.0, run.load, transfer, run.prefill, run.decode)

    def ready_time(self, stage: StageInfo, snap: Snapshot) -> float:
        t = snap.now
        for p in stage.parents:
            if p in self.slots:
                t = max(t, self.slots[p].end)
        return t

    def eft(
        self, stage: StageInfo, group: tuple[int, ...], snap: Snapshot, cost: CostModel
    ) -> Slot:
        """Earliest-finish slot of ``stage`` on ``group`` (insertion-based)."""
        c = self.stage_cost(stage, group, snap, cost)
        start = self.timeline.earliest_fit(group, self.ready_time(stage, snap), c.run)
        return Slot(group, start, start + c.run, c)

    def commit(self, uid: int, slot: Slot) -> None:
        self.slots[uid] = slot
        self.timeline.add(slot.gpus, slot.start, slot.end)
        for g in slot.gpus:
            bisect.insort(self.order[g], (slot.start, uid))

    def releasable(self, uid: int) -> bool:
        """Every stage planned before ``uid`` on its GPUs has been released."""
        slot = self.slots[uid]
        for g in slot.gpus:
            for _, other in self.order[g]:
                if other == uid:
                    break
                if other not in self.released:
                    return False
        return True

    def release(self, snap: Snapshot) -> Plan:
        """Assignments for frontier stages whose turn has come, in planned start order."""
        ready = sorted((self.slots[u].start, u) for u in snap.frontier if u in self.slots)
        out: list[Assignment] = []
        for _, uid in ready:
            if self.releasable(uid):
                slot = self.slots[uid]
                self.released.add(uid)
                out.append(
                    Assignment(uid, slot.gpus, DecisionRecord(cost=slot.cost, score=slot.end))
                )
        for g in range(self.n_gpus):
            self.order[g] = [(s, u) for s, u in self.order[g] if u not in self.released]
        return Plan(assignments=tuple(out))


WorkflowPlanner = Callable[[ListSchedule, int, Snapshot, CostModel], None]
"""Plans one workflow (by index) into a `ListSchedule`."""


def plan_online(
    sched: ListSchedule, snap: Snapshot, cost: CostModel, plan_workflow: WorkflowPlanner
) -> Plan:
    """The online driver: plan new workflows, then release stages whose turn has come."""
    fresh = sched.new_workflows(snap)
    if fresh:
        sched.block_backlog(snap)
        for wf in fresh:
            plan_workflow(sched, wf, snap, cost)
    return sched.release(snap)
