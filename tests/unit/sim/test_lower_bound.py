"""The makespan lower bound: the cold start every run pays is part of it, and no policy
beats it (with exact costs) on any DAG shape (`test_conformance`)."""

from __future__ import annotations

import pytest

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.graph import WorkloadGraph
from airflow_fate.spine.lower_bound import lower_bound
from tests.conftest import make_catalog, make_cluster, make_workload, stage

GIB_GB = 1.073741824


def test_a_lone_stage_cannot_finish_before_its_model_is_fetched() -> None:
    cluster, catalog = make_cluster(), make_catalog()
    graph = WorkloadGraph.from_workload(make_workload([stage("a")], copies=1), catalog)
    cost = CostModel(cluster, catalog)
    warm = min(cost.warm_time(graph.stages[0], n, 1) for n in range(len(cluster.nodes)))
    remote = 4.0 * GIB_GB / 1.25  # small-lm from the remote store
    assert lower_bound(graph, cluster, cost) == pytest.approx(remote + warm)


def test_pre_pulled_weights_shorten_the_bound_to_a_disk_read() -> None:
    cluster, catalog = make_cluster(), make_catalog()
    nodes = [cluster.nodes[0].model_copy(update={"models_on_disk": ("small-lm",)})]
    cluster = cluster.model_copy(update={"nodes": nodes + list(cluster.nodes[1:])})
    graph = WorkloadGraph.from_workload(make_workload([stage("a")], copies=1), catalog)
    cost = CostModel(cluster, catalog)
    warm = cost.warm_time(graph.stages[0], 0, 1)
    assert lower_bound(graph, cluster, cost) == pytest.approx(4.0 * GIB_GB / 3.0 + warm)


def test_a_stage_after_its_parents_waits_for_the_later_of_parents_and_fetch() -> None:
    """b (mid-lm) is ready after a; its model's fetch, from b's earliest ready time, ends
    later than a: b's finish is that fetch plus its warm run."""
    cluster, catalog = make_cluster(), make_catalog()
    wl = make_workload([stage("a"), stage("b", "mid-lm", ["a"])], copies=1)
    graph = WorkloadGraph.from_workload(wl, catalog)
    cost = CostModel(cluster, catalog)
    a, b = graph.stages
    warm = [cost.warm_time(a, 0, 1), min(cost.warm_time(b, 0, k) for k in (1, 2))]
    small = 4.0 * GIB_GB / 1.25
    mid = 15.0 * GIB_GB / 1.25
    # a computes after its own fetch; b's model fetch starts no earlier than a's warm end.
    expected = max(small + warm[0], warm[0] + mid) + warm[1]
    assert lower_bound(graph, cluster, cost) == pytest.approx(expected)


def test_many_stages_of_one_model_spread_over_the_gpus_that_host_it() -> None:
    """big-lm fits the big nodes only: its work after the fetch is shared by their 8 GPUs,
    not by all 10, and that beats the critical path."""
    cluster, catalog = make_cluster(), make_catalog()
    wl = make_workload([stage("b", "big-lm", output_tokens=4000)], copies=40, gap_s=0.0)
    graph = WorkloadGraph.from_workload(wl, catalog)
    cost = CostModel(cluster, catalog)
    work = sum(
        min(k * cost.warm_time(s, n, k) for n in (0, 1) for k in (2, 4)) for s in graph.stages
    )
    big = 120.0 * GIB_GB / 1.25
    assert not cost.fits(graph.stages[0], 2, 2), "the small node cannot host big-lm"
    assert work / 8 > max(cost.warm_time(graph.stages[0], 0, k) for k in (2, 4))
    assert lower_bound(graph, cluster, cost) == pytest.approx(big + work / 8)
