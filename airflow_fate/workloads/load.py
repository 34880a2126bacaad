"""Offered load: the Poisson arrival rate at which a suite keeps a cluster ``rho`` busy.

``rate = rho * C / W`` workflows per second, where

- ``C`` is the cluster's capacity in reference-GPU-seconds per second: the sum over its
  GPUs of their type's ``relative_speed`` (an H100-80GB is 1.0, an A100-40GB 0.55, an
  L4 0.18 in ``examples/cluster.yaml``, so that cluster's 40 GPUs give C = 23.28);
- ``W`` is the mean work of one workflow of the suite's calibration mix, in
  reference-GPU-seconds: the weighted mean over templates of the average, over a fixed
  calibration sample of instances, of ``sum over stages of w(s)``, with

  ``w(s) = min over feasible (node n, shard degree k) of
  k * speed(n) * (prefill(s, n, k) + decode(s, n, k))``

  where prefill and decode are `CostModel.compute_time` with no prefix tokens reused,
  and "feasible" is `CostModel.fits` at a degree `shard_degrees` allows on that node.

So ``rho`` = 1 is the rate at which the cluster would be exactly saturated if every stage
ran at its most efficient feasible layout, its model already resident and its inputs
already local, and work could be spread over GPUs in proportion to their speed: a fluid
bound no scheduler reaches, which is why benchmarks run below it (default 0.7).

Why these choices: weighting GPUs by speed keeps an L4-second from counting as an
H100-second, which would overstate a heterogeneous cluster's capacity by 1.7x here.
Model loads and prefix hits are left out of ``W`` on purpose: both depend on where a
policy places stages, and counting either would bake one policy's success into the
workload. ``W`` comes from a calibration sample with a fixed seed (not from the
generated workflows), so the rate is a property of the suite and the cluster: doubling
``rho`` exactly halves every inter-arrival gap for one seed, and the ``prefix-reuse``
sweep keeps its arrival times across prefix fractions.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.graph import StageInfo, WorkloadGraph
from airflow_fate.domain.models import ModelCatalog
from airflow_fate.domain.shards import shard_degrees
from airflow_fate.domain.workload import WorkflowSpec, Workload
from airflow_fate.errors import InputError
from airflow_fate.workloads.template import Template

CALIBRATION_SAMPLES = 200
"""Instances per template in the calibration sample (mean work within a few percent)."""

CALIBRATION_ENTROPY = 0x10AD
"""Seed of the calibration sample; fixed so the rate does not depend on ``--seed``."""


@dataclass(frozen=True)
class OfferedLoad:
    """An arrival rate and the figures it came from.

    Attributes:
        load: the requested ``rho``.
        capacity: C, reference-GPU-seconds per second.
        mean_work: W, reference-GPU-seconds per workflow.
        rate: workflows per second, ``load * capacity / mean_work``.
    """

    load: float
    capacity: float
    mean_work: float
    rate: float


def capacity(cluster: Cluster) -> float:
    """C: the sum of the relative speeds of the cluster's GPUs."""
    return sum(
        node.gpu_count * cluster.gpu_types[node.gpu_type].relative_speed for node in cluster.nodes
    )


def offered_load(
    load: float,
    mix: tuple[tuple[Template, float], ...],
    cluster: Cluster,
    catalog: ModelCatalog,
) -> OfferedLoad:
    """The arrival rate for ``load`` (rho) of the calibration ``mix`` on this cluster."""
    cap = capacity(cluster)
    work = _mean_work(mix, cluster.model_dump_json(), catalog.model_dump_json())
    return OfferedLoad(load=load, capacity=cap, mean_work=work, rate=load * cap / work)


@lru_cache(maxsize=16)
def _mean_work(
    mix: tuple[tuple[Template, float], ...], cluster_json: str, catalog_json: str
) -> float:
    """W, cached per (mix, cluster, catalog): a calibration costs about a second."""
    cluster = Cluster.model_validate_json(cluster_json)
    catalog = ModelCatalog.model_validate_json(catalog_json)
    cost = CostModel(cluster, catalog)
    total_weight = sum(w for _, w in mix)
    mean = 0.0
    for t, (template, weight) in enumerate(mix):
        workflows = [
            WorkflowSpec(
                id=f"calibration-{j}",
                arrival_s=0.0,
                stages=template.build(np.random.default_rng([CALIBRATION_ENTROPY, t, j])),
            )
            for j in range(CALIBRATION_SAMPLES)
        ]
        graph = WorkloadGraph.from_workload(Workload(workflows=workflows), catalog)
        work = sum(stage_work(stage, cluster, cost) for stage in graph.stages)
        mean += weight / total_weight * work / CALIBRATION_SAMPLES
    return mean


def stage_work(stage: StageInfo, cluster: Cluster, cost: CostModel) -> float:
    """w(s): reference-GPU-seconds of the stage at its most efficient feasible layout."""
    best: float | None = None
    for n in _node_shapes(cluster):
        node = cluster.nodes[n]
        speed = cluster.gpu_types[node.gpu_type].relative_speed
        for k in shard_degrees(stage.min_shards, stage.max_shards, node.gpu_count):
            if cost.fits(stage, n, k):
                prefill, decode = cost.compute_time(stage, n, k, 0)
                work = k * speed * (prefill + decode)
                best = work if best is None else min(best, work)
    if best is None:
        raise InputError(
            "--cluster",
            "",
            f"stage {stage.stage_id!r} of the suite ({stage.model}, {stage.tokens} tokens) "
            "fits no node of this cluster",
        )
    return best


def _node_shapes(cluster: Cluster) -> list[int]:
    """One node index per distinct (GPU type, GPU count): costs depend on nothing else."""
    seen: dict[tuple[str, int], int] = {}
    for n, node in enumerate(cluster.nodes):
        seen.setdefault((node.gpu_type, node.gpu_count), n)
    return list(seen.values())
