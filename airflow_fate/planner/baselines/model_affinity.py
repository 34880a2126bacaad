"""ModelAffinity: ServerlessLLM's locality-aware server selection (OSDI'24), proxied.

ServerlessLLM places a model request on the server with the smallest estimated startup
time: queueing delay plus model loading time from the tier the checkpoint is in (GPU,
host memory, local SSD, remote store). Here: among every candidate group (any degree),
minimise ``wait + load`` from the state-conditional cost model, then the finish time as
tie-break. It does not price input locality, prefix KV or what a choice does to later
stages.
"""

from __future__ import annotations

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.graph import StageInfo
from airflow_fate.domain.plan import Plan
from airflow_fate.planner.candidates import groups_for
from airflow_fate.planner.sequential import fifo_order, place_in_order
from airflow_fate.state.cluster_state import Snapshot


class ModelAffinity:
    name = "model-affinity"

    def __init__(self, seed: int = 0) -> None:
        pass

    def plan(self, snap: Snapshot, cost: CostModel) -> Plan:
        def choose(stage: StageInfo, s: Snapshot) -> tuple[int, ...] | None:
            best: tuple[int, ...] | None = None
            best_key = (float("inf"), float("inf"))
            for group in groups_for(stage, s, cost):
                est = cost.estimate(stage, group, s)
                if est is None:
                    continue
                key = (est.wait + est.load, est.total)
                if key < best_key:
                    best, best_key = group, key
            return best

        return place_in_order(snap, cost, fifo_order(snap), choose)
