"""RoundRobin: the normalisation baseline of FATE's paper (arXiv 2605.07238).

Ready stages, in arrival order, go to the next GPU in a fixed cyclic order, queueing
behind whatever runs there; it knows memory fit (a stage needing k GPUs takes the aligned
k-block of the node containing the next GPU) and nothing else: no residency, locality,
prefix or load awareness.
"""

from __future__ import annotations

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.graph import StageInfo
from airflow_fate.domain.plan import Plan
from airflow_fate.planner.candidates import smallest_degree
from airflow_fate.planner.sequential import fifo_order, place_in_order
from airflow_fate.state.cluster_state import Snapshot


class RoundRobin:
    name = "round-robin"

    def __init__(self, seed: int = 0) -> None:
        self._next = 0

    def plan(self, snap: Snapshot, cost: CostModel) -> Plan:
        def choose(stage: StageInfo, s: Snapshot) -> tuple[int, ...] | None:
            gpus = s.cluster.gpus
            for step in range(len(gpus)):
                ref = gpus[(self._next + step) % len(gpus)]
                k = smallest_degree(stage, s, cost, ref.node)
                if k is None:
                    continue
                start = (ref.local // k) * k
                node_gpus = s.cluster.node_gpus[ref.node]
                if start + k > len(node_gpus):
                    continue
                group = node_gpus[start : start + k]
                self._next = (group[-1] + 1) % len(gpus)
                return group
            return None

        return place_in_order(snap, cost, fifo_order(snap), choose)
