"""Random: each ready stage goes to a uniformly random feasible GPU group (seeded).

Groups are drawn at each node's smallest fitting shard degree; it queues behind running
work. A sanity floor: any policy worth shipping must beat it.
"""

from __future__ import annotations

import random

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.graph import StageInfo
from airflow_fate.domain.plan import Plan
from airflow_fate.planner.candidates import aligned_blocks, smallest_degree
from airflow_fate.planner.sequential import fifo_order, place_in_order
from airflow_fate.state.cluster_state import Snapshot


class RandomChoice:
    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)

    def plan(self, snap: Snapshot, cost: CostModel) -> Plan:
        def choose(stage: StageInfo, s: Snapshot) -> tuple[int, ...] | None:
            groups: list[tuple[int, ...]] = []
            for node, node_gpus in enumerate(s.cluster.node_gpus):
                k = smallest_degree(stage, s, cost, node)
                if k is not None:
                    groups.extend(aligned_blocks(node_gpus, k))
            return self._rng.choice(groups) if groups else None

        return place_in_order(snap, cost, fifo_order(snap), choose)
