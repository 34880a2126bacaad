"""LeastLoaded: each ready stage goes to the GPU group that frees up first.

Load = estimated time until the group's queues drain. Smallest fitting shard degree per
node; blind to models, outputs and prefixes (the classic load-balancing dispatcher).
"""

from __future__ import annotations

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.graph import StageInfo
from airflow_fate.domain.plan import Plan
from airflow_fate.planner.candidates import aligned_blocks, earliest_group, smallest_degree
from airflow_fate.planner.sequential import fifo_order, place_in_order
from airflow_fate.state.cluster_state import Snapshot


def least_loaded_group(stage: StageInfo, snap: Snapshot, cost: CostModel) -> tuple[int, ...] | None:
    """The group (smallest fitting degree per node) with the earliest start; ties by index."""
    best: tuple[int, ...] | None = None
    best_t = float("inf")
    for node, node_gpus in enumerate(snap.cluster.node_gpus):
        k = smallest_degree(stage, snap, cost, node)
        if k is None:
            continue
        groups = (
            [(g,) for g in node_gpus]
            if k == 1
            else [*aligned_blocks(node_gpus, k), earliest_group(snap, node, k)]
        )
        for group in groups:
            t = snap.free_at(group)
            if t < best_t:
                best, best_t = group, t
    return best


class LeastLoaded:
    name = "least-loaded"

    def __init__(self, seed: int = 0) -> None:
        pass

    def plan(self, snap: Snapshot, cost: CostModel) -> Plan:
        return place_in_order(
            snap, cost, fifo_order(snap), lambda st, s: least_loaded_group(st, s, cost)
        )
