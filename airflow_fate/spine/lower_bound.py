"""A lower bound on makespan that no policy can beat, reported beside every result.

The largest of three bounds, each counted from the first arrival:

- critical: max over workflows of ``arrival + critical path``, each stage at its best
  warm time (model resident, inputs local, prefix warm) on its fastest feasible GPU set,
  which no placement can undercut; and no stage computes before its model's first
  fetch can be through (below).
- area: total warm GPU-seconds / number of GPUs: each stage at its cheapest
  ``k * warm_time(k)`` over feasible node types and degrees, spread perfectly.
- model area, per model: its first fetch, plus its stages' cheapest GPU-seconds spread
  perfectly over the GPUs of the nodes that can host it.

A model's first fetch: every run starts cold (empty GPUs and host caches, disks holding
only the pre-pulled weights), so no stage of model m computes before
``min over its stages of their earliest ready time + min over nodes that can host m of
its first load there`` (`CostModel.first_load_time`): a later stage either fetches the
weights itself or reads bytes that a fetch no earlier brings to its node. Without this
the bound ignored the 110 s pull of 70B weights that every run pays.
"""

from __future__ import annotations

from collections import defaultdict

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.graph import StageInfo, WorkloadGraph
from airflow_fate.domain.shards import shard_degrees


def _options(stage: StageInfo, cluster: Cluster, cost: CostModel) -> list[tuple[int, int, float]]:
    """(node, k, warm seconds) for every feasible (node, degree)."""
    out: list[tuple[int, int, float]] = []
    for n, node in enumerate(cluster.nodes):
        for k in shard_degrees(stage.min_shards, stage.max_shards, node.gpu_count):
            if cost.fits(stage, n, k):
                out.append((n, k, cost.warm_time(stage, n, k)))
    return out


def lower_bound(graph: WorkloadGraph, cluster: Cluster, cost: CostModel) -> float:
    """Seconds; see the module docstring."""
    fastest: dict[int, float] = {}
    area = 0.0
    model_work: dict[str, float] = defaultdict(float)
    hosts: dict[str, set[int]] = defaultdict(set)
    memo: dict[tuple[object, ...], tuple[float, float, frozenset[int]]] = {}
    for stage in graph.stages:
        # Stages of one template repeat the same shape; price each shape once.
        key = (
            stage.model,
            stage.input_tokens,
            stage.output_tokens,
            stage.prefix_tokens,
            stage.min_shards,
            stage.max_shards,
        )
        if key not in memo:
            opts = _options(stage, cluster, cost)
            memo[key] = (
                min(t for _, _, t in opts),
                min(k * t for _, k, t in opts),
                frozenset(n for n, _, _ in opts),
            )
        fastest[stage.uid], work, nodes = memo[key]
        area += work
        model_work[stage.model] += work
        hosts[stage.model].update(nodes)
    first = min(wf.arrival_s for wf in graph.workflows)
    earliest = _earliest_ready(graph, fastest)
    fetched: dict[str, float] = {}
    for stage in graph.stages:
        ready = earliest[stage.uid]
        fetched[stage.model] = min(fetched.get(stage.model, ready), ready)
    for model, ready in fetched.items():
        fetched[model] = ready + min(cost.first_load_time(model, n) for n in hosts[model])
    critical = 0.0
    for wf in graph.workflows:
        finish: dict[int, float] = {}
        for uid in graph.topological_order(wf.index):
            stage = graph.stages[uid]
            ready = max((finish[p] for p in stage.parents), default=wf.arrival_s)
            finish[uid] = max(ready, fetched[stage.model]) + fastest[uid]
        critical = max(critical, max(finish.values()) - first)
    model_area = max(
        fetched[m] + work / sum(cluster.nodes[n].gpu_count for n in hosts[m]) - first
        for m, work in model_work.items()
    )
    return max(critical, area / len(cluster.gpus), model_area)


def _earliest_ready(graph: WorkloadGraph, fastest: dict[int, float]) -> dict[int, float]:
    """Each stage's ready time with every ancestor at its fastest warm time."""
    ready: dict[int, float] = {}
    for wf in graph.workflows:
        finish: dict[int, float] = {}
        for uid in graph.topological_order(wf.index):
            parents = graph.stages[uid].parents
            ready[uid] = max((finish[p] for p in parents), default=wf.arrival_s)
            finish[uid] = ready[uid] + fastest[uid]
    return ready
