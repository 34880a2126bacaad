"""Liveness: every registered policy runs every stage that fits some node.

The cluster is the example one without its H100 nodes, so the 70B model (``min_shards``
2) fits only 4 A100-40GB GPUs and a 14B stage on an L4 node needs 2: the smallest
feasible degree exceeds ``min_shards``. A policy (or ablation) that caps a stage's
layouts at ``min_shards`` instead of at its smallest fitting degree leaves them unrun.
"""

from __future__ import annotations

import pytest

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.graph import WorkloadGraph
from airflow_fate.domain.loaders import load_cluster, load_models
from airflow_fate.domain.models import ModelCatalog
from airflow_fate.domain.workload import Workload
from airflow_fate.planner.registry import make_policy, policy_names
from airflow_fate.sim.simulator import simulate
from airflow_fate.workloads.generator import GenerateRequest, generate
from tests.conftest import EXAMPLES

WORKFLOWS = 10
SEED = 1


def _without_h100(base: Cluster) -> Cluster:
    nodes = [n.model_dump() for n in base.nodes if n.gpu_type != "H100-80GB"]
    return Cluster.model_validate({**base.model_dump(), "nodes": nodes})


@pytest.fixture(scope="module")
def setting() -> tuple[Cluster, ModelCatalog, Workload]:
    cluster = _without_h100(load_cluster(EXAMPLES / "cluster.yaml"))
    catalog = load_models(EXAMPLES / "models.yaml", cluster)
    request = GenerateRequest(suite="real-dag", workflows=WORKFLOWS, seed=SEED)
    return cluster, catalog, generate(request, cluster, catalog).workload


def test_setting_needs_more_gpus_than_min_shards(
    setting: tuple[Cluster, ModelCatalog, Workload],
) -> None:
    """Guards the conformance test below against a workload that no longer tests it."""
    cluster, catalog, workload = setting
    cost = CostModel(cluster, catalog)
    graph = WorkloadGraph.from_workload(workload, catalog)
    smallest = {
        s.uid: min(ks[0] for n in range(len(cluster.nodes)) if (ks := cost.degrees(s, n)))
        for s in graph.stages
    }
    wide = [s for s in graph.stages if smallest[s.uid] >= 2]
    assert any(s.min_shards >= 2 and smallest[s.uid] > s.min_shards for s in wide)


@pytest.mark.parametrize("policy", policy_names())
def test_every_stage_runs(policy: str, setting: tuple[Cluster, ModelCatalog, Workload]) -> None:
    cluster, catalog, workload = setting
    result = simulate(cluster, catalog, workload, make_policy(policy, seed=SEED), seed=SEED)
    graph = WorkloadGraph.from_workload(workload, catalog)
    ran = {(p.workflow, p.stage) for p in result.placements}
    assert ran == {(s.workflow_id, s.stage_id) for s in graph.stages}
    assert len(result.placements) == len(graph.stages)
