"""Upward rank (HEFT's priority): a stage's average cost plus its longest path to an exit.

Average cost = warm compute time averaged over the GPUs that can host the stage (at its
smallest fitting degree per node), plus the mean transfer time of its output over all
ordered GPU pairs, same-GPU pairs (free) included: the expected transfer when the child's
GPU is not yet known. Used by HEFT-family baselines
and by FATE's criticality weights.
"""

from __future__ import annotations

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.graph import StageInfo, WorkloadGraph
from airflow_fate.domain.shards import shard_degrees


def average_compute(stage: StageInfo, cluster: Cluster, cost: CostModel) -> float:
    """Mean warm seconds of ``stage`` over every GPU that can host it."""
    total = 0.0
    count = 0
    for n, node in enumerate(cluster.nodes):
        ks = [
            k
            for k in shard_degrees(stage.min_shards, stage.max_shards, node.gpu_count)
            if cost.fits(stage, n, k)
        ]
        if not ks:
            continue
        total += cost.warm_time(stage, n, ks[0]) * node.gpu_count
        count += node.gpu_count
    return total / count if count else 0.0


def upward_ranks(
    graph: WorkloadGraph, workflow: int, cluster: Cluster, cost: CostModel
) -> dict[int, float]:
    """Upward rank of every stage of one workflow."""
    ranks: dict[int, float] = {}
    for uid in reversed(graph.topological_order(workflow)):
        stage = graph.stages[uid]
        comm = cost.mean_transfer_time(stage.output_bytes)
        tail = max((ranks[c] for c in stage.children), default=0.0)
        ranks[uid] = average_compute(stage, cluster, cost) + (
            comm + tail if stage.children else 0.0
        )
    return ranks
