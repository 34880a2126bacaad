"""PEFT (Arabnejad, Barbosa; IEEE TPDS 2014), applied online per arriving workflow.

The Optimistic Cost Table ``OCT(s, p) = max over children c of min over groups q of c
[OCT(c, q) + w(c, q) + (mean transfer of s's output if q != p)]`` looks one step ahead
of every choice; stages are ordered by their mean OCT (among those whose parents are
planned) and each takes the group minimising ``EFT(s, p) + OCT(s, p)``. Groups are
single GPUs and aligned shard blocks; ``w`` is the shared state-conditional run cost at
the workflow's arrival. Shares HEFT's timeline.
"""

from __future__ import annotations

import heapq

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.plan import Plan
from airflow_fate.planner.baselines.list_schedule import (
    ListSchedule,
    Slot,
    plan_online,
    processor_groups,
)
from airflow_fate.state.cluster_state import Snapshot


def peft_workflow(sched: ListSchedule, wf: int, snap: Snapshot, cost: CostModel) -> None:
    graph = snap.graph
    topo = graph.topological_order(wf)
    groups = {u: processor_groups(graph.stages[u], snap, cost) for u in topo}
    work = {u: {g: cost.run_cost(graph.stages[u], g, snap).run for g in groups[u]} for u in topo}
    oct_: dict[int, dict[tuple[int, ...], float]] = {}
    for uid in reversed(topo):
        stage = graph.stages[uid]
        comm = cost.mean_transfer_time(stage.output_bytes)
        row: dict[tuple[int, ...], float] = {}
        for p in groups[uid]:
            worst = 0.0
            for c in stage.children:
                cheapest = min(
                    oct_[c][q] + work[c][q] + (0.0 if q == p else comm) for q in groups[c]
                )
                worst = max(worst, cheapest)
            row[p] = worst
        oct_[uid] = row
    rank = {u: sum(oct_[u].values()) / len(oct_[u]) for u in topo}

    waiting = {u: len(graph.stages[u].parents) for u in topo}
    heap = [(-rank[u], u) for u in topo if waiting[u] == 0]
    heapq.heapify(heap)
    while heap:
        _, uid = heapq.heappop(heap)
        stage = graph.stages[uid]
        best: Slot | None = None
        best_key = float("inf")
        for group in groups[uid]:
            slot = sched.eft(stage, group, snap, cost)
            key = slot.end + oct_[uid][group]
            if key < best_key:
                best, best_key = slot, key
        assert best is not None, "loaders guarantee every stage fits some node"
        sched.commit(uid, best)
        snap = snap.reserve(uid, best.gpus, best.cost.run)
        for c in stage.children:
            waiting[c] -= 1
            if waiting[c] == 0:
                heapq.heappush(heap, (-rank[c], c))


class Peft:
    name = "peft"

    def __init__(self, seed: int = 0) -> None:
        self._sched: ListSchedule | None = None

    def plan(self, snap: Snapshot, cost: CostModel) -> Plan:
        if self._sched is None:
            self._sched = ListSchedule(len(snap.gpus))
        return plan_online(self._sched, snap, cost, peft_workflow)
