"""`Dispatcher`: plan the frontier, check and reserve the plan, say what may start.

One implementation of steps 1-3 of the decision loop, so the simulator (virtual clock),
the live engine and the Airflow executor (wall clock) place stages identically. Callers
own the clock and the execution: they report arrivals, starts and finishes, and start the
stages `decide` and `startable` hand back.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field, replace

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.graph import Renumbering
from airflow_fate.domain.plan import Assignment, DecisionRecord, Plan
from airflow_fate.errors import SimulationError
from airflow_fate.planner.policy import Policy
from airflow_fate.state.cluster_state import (
    ClusterState,
    Snapshot,
    StageAssigned,
    StageFinished,
    StageStarted,
    StartEffects,
    WorkflowArrived,
    stage_label,
)


@dataclass
class PlannerLog:
    """Wall-clock milliseconds of every ``plan`` call, and how many used a fallback."""

    plan_ms: list[float] = field(default_factory=list)
    fallbacks: int = 0


class Dispatcher:
    """Runs a policy against a `ClusterState` and enforces what a valid plan is."""

    def __init__(self, state: ClusterState, cost: CostModel, policy: Policy) -> None:
        self.state = state
        self.cost = cost
        self.policy = policy
        self.log = PlannerLog()
        self.records: dict[int, DecisionRecord | None] = {}

    def arrive(self, workflow: int, now: float) -> None:
        self.state.apply(WorkflowArrived(workflow, now))

    def decide(self, now: float, eligible: Collection[int] | None = None) -> Plan | None:
        """Plan the ready frontier (if any) and reserve the accepted assignments.

        ``eligible`` narrows the frontier to those stages: the Airflow executor passes the
        stages whose tasks Airflow has queued, since a stage whose fate parents are done
        may still wait on a CPU task or a trigger rule. Returns the plan (None when
        nothing was ready). Raises `SimulationError` when the policy returns something no
        correct policy may (a bug, never a user error).
        """
        self.state.now = max(self.state.now, now)
        ready = self.state.ready
        frontier = ready if eligible is None else ready.intersection(eligible)
        if not frontier:
            return None
        snap = self.state.snapshot()
        if eligible is not None:
            snap = replace(snap, frontier=tuple(sorted(frontier)))
        t0 = time.perf_counter()
        plan = self.policy.plan(snap, self.cost)
        self.log.plan_ms.append((time.perf_counter() - t0) * 1000.0)
        if plan.fallback:
            self.log.fallbacks += 1
        for a in plan.assignments:
            snap = self.state.snapshot()
            self._validate(a, snap, frontier)
            est = self.cost.estimate(self.state.graph.stages[a.stage], a.gpus, snap)
            assert est is not None  # _validate checked the fit
            self.state.apply(StageAssigned(a.stage, a.gpus, now, est.run))
            self.records[a.stage] = a.record
        return plan

    def startable(self, gpus: tuple[int, ...] | list[int]) -> list[int]:
        """Reserved stages at the head of these GPUs' queues whose GPUs are all idle."""
        heads = self.state.heads(tuple(dict.fromkeys(gpus)))
        return [u for u in heads if self.state.startable(u)]

    def started(self, stage: int, now: float) -> StartEffects:
        effects = self.state.apply(StageStarted(stage, now))
        assert effects is not None
        return effects

    def finished(self, stage: int, now: float, run_s: float) -> tuple[int, ...]:
        """Record a finish; returns the stage's GPUs (now idle)."""
        self.state.apply(StageFinished(stage, now, run_s))
        gpus = self.state.placement_of(stage)
        assert gpus is not None
        return gpus

    def forget(self, workflows: Collection[int], policy: Policy) -> Renumbering:
        """Drop finished ``workflows`` from the state (`ClusterState.forget`), carry on
        with ``policy``.

        The new policy is needed because policies cache per-uid and per-workflow facts
        across decisions (FATE's upward ranks and model demand, Parrot's depths) that the
        renumbering would make point at other stages; a fresh one recomputes them for
        the live workflows. Records of dropped stages go, the others are renumbered.
        """
        moved = self.state.forget(workflows)
        self.records = {moved.stages[u]: r for u, r in self.records.items() if u in moved.stages}
        self.policy = policy
        return moved

    def _validate(self, a: Assignment, snap: Snapshot, frontier: frozenset[int]) -> None:
        stage = self.state.graph.stages[a.stage]
        who = f"policy {self.policy.name!r} placed {stage_label(stage)}"
        if a.stage not in self.state.ready or a.stage not in frontier:
            raise SimulationError(f"{who} but it is not ready (or already placed)")
        if not a.gpus or len(set(a.gpus)) != len(a.gpus):
            raise SimulationError(f"{who} on an empty or repeated GPU set {a.gpus}")
        nodes = {snap.cluster.gpus[g].node for g in a.gpus}
        if len(nodes) != 1:
            raise SimulationError(f"{who} across nodes {sorted(nodes)}")
        node = nodes.pop()
        if len(a.gpus) not in self.cost.degrees(stage, node):
            raise SimulationError(
                f"{who} on {len(a.gpus)} GPUs of node {node}: degree not allowed or does not fit"
            )
