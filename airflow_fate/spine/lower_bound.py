"""A lower bound on makespan that no policy can beat, reported beside every result.

``max(critical, area)`` where

- critical = max over workflows of ``arrival + critical path`` (minus the first
  arrival): each stage at its best warm time (model resident, inputs local, prefix warm)
  on its fastest feasible GPU set, which no placement can undercut;
- area = total warm GPU-seconds / number of GPUs: each stage at its cheapest
  ``k * warm_time(k)`` over feasible node types and degrees, spread perfectly.
"""

from __future__ import annotations

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.graph import StageInfo, WorkloadGraph
from airflow_fate.domain.shards import shard_degrees


def _options(stage: StageInfo, cluster: Cluster, cost: CostModel) -> list[tuple[int, float]]:
    """(k, warm seconds) for every feasible (node, degree)."""
    out: list[tuple[int, float]] = []
    for n, node in enumerate(cluster.nodes):
        for k in shard_degrees(stage.min_shards, stage.max_shards, node.gpu_count):
            if cost.fits(stage, n, k):
                out.append((k, cost.warm_time(stage, n, k)))
    return out


def lower_bound(graph: WorkloadGraph, cluster: Cluster, cost: CostModel) -> float:
    """Seconds; see the module docstring."""
    fastest: dict[int, float] = {}
    area = 0.0
    memo: dict[tuple[object, ...], tuple[float, float]] = {}
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
            memo[key] = (min(t for _, t in opts), min(k * t for k, t in opts))
        fastest[stage.uid], work = memo[key]
        area += work
    first = min(wf.arrival_s for wf in graph.workflows)
    critical = 0.0
    for wf in graph.workflows:
        finish: dict[int, float] = {}
        for uid in graph.topological_order(wf.index):
            ready = max((finish[p] for p in graph.stages[uid].parents), default=wf.arrival_s)
            finish[uid] = ready + fastest[uid]
        critical = max(critical, max(finish.values()) - first)
    return max(critical, area / len(cluster.gpus))
