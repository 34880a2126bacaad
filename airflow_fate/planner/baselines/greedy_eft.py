"""GreedyEFT: state-aware earliest finish time, one stage at a time (myopic).

Each ready stage, in arrival order, takes the candidate group (any shard degree) with the
smallest estimated finish under the full state-conditional cost model: wait, load from
the best tier, input transfer, prefill after prefix reuse, decode. It sees every state
dimension FATE sees but only for the stage in hand, never for the stages that follow; a
strong baseline and the "no horizon" reference for FATE's future term.
"""

from __future__ import annotations

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.plan import Plan
from airflow_fate.planner.candidates import groups_for
from airflow_fate.planner.sequential import earliest_finish, fifo_order, place_in_order
from airflow_fate.state.cluster_state import Snapshot


class GreedyEft:
    name = "greedy-eft"

    def __init__(self, seed: int = 0) -> None:
        pass

    def plan(self, snap: Snapshot, cost: CostModel) -> Plan:
        return place_in_order(
            snap,
            cost,
            fifo_order(snap),
            lambda st, s: earliest_finish(st, s, cost, groups_for(st, s, cost)),
        )
