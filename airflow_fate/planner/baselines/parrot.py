"""Parrot (OSDI'24), proxied: application-aware, deepest-first, prefix co-location.

Parrot sees the whole application DAG through Semantic Variables. It schedules ready
requests deepest-first (the longest remaining chain of dependent calls first, so the
application's critical path is not starved) and co-locates requests that share a prompt
prefix, or belong to the same application, on the same engine to reuse context. Proxy:
frontier ordered by remaining depth (stages on the longest path to an exit, descending),
then arrival; placement among groups at each node's smallest fitting degree: first those
with the stage's prefix KV warm or queued, else those holding a parent's output (same
application), else all; least-loaded within the chosen class. It does not price model
loads or the stages that follow beyond ordering.
"""

from __future__ import annotations

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.graph import StageInfo, WorkloadGraph
from airflow_fate.domain.plan import Plan
from airflow_fate.planner.baselines.prefix_affinity import worker_groups
from airflow_fate.planner.sequential import place_in_order
from airflow_fate.state.cluster_state import Snapshot


def remaining_depth(graph: WorkloadGraph, workflow: int) -> dict[int, int]:
    """Number of stages on the longest path from each stage to an exit (itself included)."""
    depth: dict[int, int] = {}
    for uid in reversed(graph.topological_order(workflow)):
        depth[uid] = 1 + max((depth[c] for c in graph.stages[uid].children), default=0)
    return depth


class Parrot:
    name = "parrot"

    def __init__(self, seed: int = 0) -> None:
        self._depth: dict[int, int] = {}
        self._seen: set[int] = set()

    def plan(self, snap: Snapshot, cost: CostModel) -> Plan:
        stages = snap.graph.stages
        for uid in snap.frontier:
            wf = stages[uid].workflow
            if wf not in self._seen:
                self._seen.add(wf)
                self._depth.update(remaining_depth(snap.graph, wf))
        order = sorted(
            snap.frontier,
            key=lambda u: (-self._depth[u], snap.arrived.get(stages[u].workflow, 0.0), u),
        )

        def choose(stage: StageInfo, s: Snapshot) -> tuple[int, ...] | None:
            groups = worker_groups(stage, s, cost)
            if not groups:
                return None
            warm = [g for g in groups if cost.reused_tokens(stage, g, s) > 0]
            parent_gpus = {g for p in stage.parents for g in s.placement.get(p, ())}
            local = [g for g in groups if parent_gpus.intersection(g)]
            pool = warm or local or groups
            return min(pool, key=lambda g: s.free_at(g))

        return place_in_order(snap, cost, order, choose)
