"""HEFT (Topcuoglu, Hariri, Wu; IEEE TPDS 2002), applied online per arriving workflow.

Stages of an arriving workflow are ordered by upward rank (average warm compute over the
GPUs that can host them plus average output transfer, plus the heaviest path below);
each in turn takes the candidate group (single GPUs and aligned shard blocks) with the
earliest finish, inserting into idle gaps of the timeline (`list_schedule`). Costs are
the shared state-conditional estimates at arrival, so HEFT sees residency and prefix
state as it is when the workflow arrives but not how later workflows will change it.
With state costs switched off it is the textbook algorithm (cross-checked against the
independent ``anrg-saga`` implementation in the tests).
"""

from __future__ import annotations

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.plan import Plan
from airflow_fate.planner.baselines.list_schedule import (
    ListSchedule,
    Slot,
    plan_online,
    processor_groups,
)
from airflow_fate.planner.ranks import upward_ranks
from airflow_fate.state.cluster_state import Snapshot


def heft_workflow(sched: ListSchedule, wf: int, snap: Snapshot, cost: CostModel) -> None:
    """Plan one workflow into ``sched`` with HEFT's rank order and insertion EFT."""
    graph = snap.graph
    ranks = upward_ranks(graph, wf, snap.cluster, cost)
    topo = {u: i for i, u in enumerate(graph.topological_order(wf))}
    for uid in sorted(ranks, key=lambda u: (-ranks[u], topo[u])):
        stage = graph.stages[uid]
        best: Slot | None = None
        for group in processor_groups(stage, snap, cost):
            slot = sched.eft(stage, group, snap, cost)
            if best is None or slot.end < best.end:
                best = slot
        assert best is not None, "loaders guarantee every stage fits some node"
        sched.commit(uid, best)
        snap = snap.reserve(uid, best.gpus, best.cost.run)


class Heft:
    name = "heft"

    def __init__(self, seed: int = 0) -> None:
        self._sched: ListSchedule | None = None

    def plan(self, snap: Snapshot, cost: CostModel) -> Plan:
        if self._sched is None:
            self._sched = ListSchedule(len(snap.gpus))
        return plan_online(self._sched, snap, cost, heft_workflow)
