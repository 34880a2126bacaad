"""CPOP (Topcuoglu, Hariri, Wu; IEEE TPDS 2002), applied online per arriving workflow.

Priority = upward rank + downward rank. Stages whose priority equals the entry stage's
(the critical path, within 1e-9 relative) all go to one "critical-path processor": the
single GPU that minimises the summed warm compute of the critical path (sharded
critical stages, which no single GPU can take, fall back to EFT). Other stages take the
earliest-finish group by insertion. Stages are scheduled in priority order among those
whose parents are already planned, as in the paper. Shares HEFT's timeline and costs.
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
from airflow_fate.planner.ranks import average_compute, upward_ranks
from airflow_fate.state.cluster_state import Snapshot


def downward_ranks(snap: Snapshot, wf: int, cost: CostModel) -> dict[int, float]:
    graph = snap.graph
    ranks: dict[int, float] = {}
    for uid in graph.topological_order(wf):
        stage = graph.stages[uid]
        ranks[uid] = max(
            (
                ranks[p]
                + average_compute(graph.stages[p], snap.cluster, cost)
                + cost.mean_transfer_time(graph.stages[p].output_bytes)
                for p in stage.parents
            ),
            default=0.0,
        )
    return ranks


def cpop_workflow(sched: ListSchedule, wf: int, snap: Snapshot, cost: CostModel) -> None:
    graph = snap.graph
    up = upward_ranks(graph, wf, snap.cluster, cost)
    down = downward_ranks(snap, wf, cost)
    prio = {u: up[u] + down[u] for u in up}
    top = max(prio.values())
    critical = {u for u, p in prio.items() if abs(p - top) <= 1e-9 * max(1.0, top)}
    singles = [
        g
        for g in range(len(snap.gpus))
        if all(
            (g,) in processor_groups(graph.stages[u], snap, cost)
            for u in critical
            if graph.stages[u].min_shards == 1
        )
    ]
    cp_gpu: int | None = None
    if singles:

        def cp_load(g: int) -> float:
            node = snap.cluster.gpus[g].node
            return sum(
                cost.warm_time(graph.stages[u], node, 1)
                for u in critical
                if graph.stages[u].min_shards == 1
            )

        cp_gpu = min(singles, key=cp_load)

    waiting = {u: len(graph.stages[u].parents) for u in up}
    heap = [(-prio[u], u) for u, n in waiting.items() if n == 0]
    heapq.heapify(heap)
    while heap:
        _, uid = heapq.heappop(heap)
        stage = graph.stages[uid]
        groups = processor_groups(stage, snap, cost)
        if uid in critical and cp_gpu is not None and (cp_gpu,) in groups:
            best: Slot | None = sched.eft(stage, (cp_gpu,), snap, cost)
        else:
            best = None
            for group in groups:
                slot = sched.eft(stage, group, snap, cost)
                if best is None or slot.end < best.end:
                    best = slot
        assert best is not None, "loaders guarantee every stage fits some node"
        sched.commit(uid, best)
        snap = snap.reserve(uid, best.gpus, best.cost.run)
        for c in stage.children:
            waiting[c] -= 1
            if waiting[c] == 0:
                heapq.heappush(heap, (-prio[c], c))


class Cpop:
    name = "cpop"

    def __init__(self, seed: int = 0) -> None:
        self._sched: ListSchedule | None = None

    def plan(self, snap: Snapshot, cost: CostModel) -> Plan:
        if self._sched is None:
            self._sched = ListSchedule(len(snap.gpus))
        return plan_online(self._sched, snap, cost, cpop_workflow)
