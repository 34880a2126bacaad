"""PrefixAffinity: SGLang's cache-aware router (RadixAttention, NeurIPS'24), proxied.

SGLang's router sends a request to the worker with the longest cached prefix match when
the match ratio is above ``cache_threshold`` (0.5 by default), unless the load is
imbalanced (max load - min load above an absolute threshold and above a relative one), in
which case it picks the least-loaded worker; without a good match it also picks the
least-loaded worker. Proxy: workers are candidate GPU groups at each node's smallest
fitting degree; load is the estimated seconds until the group drains; a match is the
stage's prefix KV warm (or queued) on the group, ratio ``prefix_tokens / input_tokens``;
imbalance when ``max - min > 30 s`` and ``max > 1.5 * min`` (the router counts requests;
seconds are the honest analogue for stages of very different sizes).
"""

from __future__ import annotations

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.graph import StageInfo
from airflow_fate.domain.plan import Plan
from airflow_fate.planner.candidates import aligned_blocks, earliest_group, smallest_degree
from airflow_fate.planner.sequential import fifo_order, place_in_order
from airflow_fate.state.cluster_state import Snapshot

CACHE_THRESHOLD = 0.5
BALANCE_ABS_S = 30.0
BALANCE_REL = 1.5


def worker_groups(stage: StageInfo, snap: Snapshot, cost: CostModel) -> list[tuple[int, ...]]:
    """Candidate groups at each node's smallest fitting degree (the router's workers)."""
    out: list[tuple[int, ...]] = []
    for node, node_gpus in enumerate(snap.cluster.node_gpus):
        k = smallest_degree(stage, snap, cost, node)
        if k == 1:
            out.extend((g,) for g in node_gpus)
        elif k is not None:
            for group in [*aligned_blocks(node_gpus, k), earliest_group(snap, node, k)]:
                if group not in out:
                    out.append(group)
    return out


class PrefixAffinity:
    name = "prefix-affinity"

    def __init__(self, seed: int = 0) -> None:
        pass

    def plan(self, snap: Snapshot, cost: CostModel) -> Plan:
        def choose(stage: StageInfo, s: Snapshot) -> tuple[int, ...] | None:
            groups = worker_groups(stage, s, cost)
            if not groups:
                return None
            load = {g: s.free_at(g) - s.now for g in groups}
            least = min(groups, key=lambda g: load[g])
            hi, lo = max(load.values()), min(load.values())
            if hi - lo > BALANCE_ABS_S and hi > BALANCE_REL * lo:
                return least
            if (
                stage.prefix_id
                and stage.input_tokens
                and stage.prefix_tokens / stage.input_tokens >= CACHE_THRESHOLD
            ):
                hits = [g for g in groups if cost.reused_tokens(stage, g, s) > 0]
                if hits:
                    return min(hits, key=lambda g: load[g])
            return least

        return place_in_order(snap, cost, fifo_order(snap), choose)
