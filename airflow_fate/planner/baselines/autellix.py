"""Autellix (2025), proxied: program-level least-attained-service (PLAS) with locality.

Autellix treats each agentic program as a unit: its central scheduler orders calls by the
program's attained service so far (least first, which approximates shortest-job-first
without knowing lengths), and its load balancer sends short prompts to the least-loaded
engine while long prompts stick to the engine that already served their program (its KV
is there). Proxy: frontier ordered by the workflow's attained GPU-seconds, then arrival;
a stage with ``input_tokens >= 2048`` (long) goes to the group its latest placed parent
used when the model fits there at that degree (queueing allowed, as stickiness is the
point); otherwise it goes to the least-loaded group that is idle now, and waits in the
central queue when none is.
"""

from __future__ import annotations

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.graph import StageInfo
from airflow_fate.domain.plan import Plan
from airflow_fate.planner.baselines.kube_default import idle
from airflow_fate.planner.baselines.prefix_affinity import worker_groups
from airflow_fate.planner.sequential import place_in_order
from airflow_fate.state.cluster_state import Snapshot

LONG_PROMPT_TOKENS = 2048


class Autellix:
    name = "autellix"

    def __init__(self, seed: int = 0) -> None:
        pass

    def plan(self, snap: Snapshot, cost: CostModel) -> Plan:
        stages = snap.graph.stages
        order = sorted(
            snap.frontier,
            key=lambda u: (
                snap.service.get(stages[u].workflow, 0.0),
                snap.arrived.get(stages[u].workflow, 0.0),
                u,
            ),
        )

        def choose(stage: StageInfo, s: Snapshot) -> tuple[int, ...] | None:
            if stage.input_tokens >= LONG_PROMPT_TOKENS and stage.parents:
                latest = max(stage.parents, key=lambda p: (s.finished.get(p, 0.0), p))
                home = s.placement.get(latest)
                if home is not None:
                    node = s.cluster.gpus[home[0]].node
                    if len(home) in cost.degrees(stage, node):
                        return home
            free = [g for g in worker_groups(stage, s, cost) if all(idle(s, x) for x in g)]
            return min(free, key=lambda g: s.free_at(g)) if free else None

        return place_in_order(snap, cost, order, choose)
