"""A bound on the shard degree caps optional widening, never a stage's smallest layout."""

from __future__ import annotations

import pytest

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.graph import StageInfo, WorkloadGraph
from airflow_fate.planner.candidates import capped_degrees, groups_for
from airflow_fate.planner.fate import Fate, FateConfig
from airflow_fate.state.cluster_state import ClusterState, Snapshot, WorkflowArrived
from tests.conftest import make_catalog, make_cluster, make_workload, stage

# 160 GiB of weights with min_shards 2: 80 GiB a GPU at 2 shards does not fit a "big"
# GPU (72 GiB usable), 40 GiB at 4 does; no degree fits a "small" one (21.6 GiB).
HUGE = {
    "weights_gib": 160.0,
    "kv_bytes_per_token": 327680,
    "prefill_tokens_per_s": 1000,
    "decode_tokens_per_s": 300,
    "min_shards": 2,
    "max_shards": 8,
}


def _snapshot() -> Snapshot:
    cluster = make_cluster([("n0", "big", 8), ("n1", "small", 4)])
    catalog = make_catalog(**{"huge-lm": HUGE})
    graph = WorkloadGraph.from_workload(make_workload([stage("s", "huge-lm")], 1), catalog)
    state = ClusterState(cluster, catalog, graph)
    state.apply(WorkflowArrived(0, 0.0))
    return state.snapshot()


def _huge(snap: Snapshot) -> StageInfo:
    return snap.graph.stages[0]


@pytest.mark.parametrize(
    ("bound", "big", "small"),
    [
        pytest.param(None, (4, 8), (), id="unbounded"),
        pytest.param(1, (4,), (), id="below-min-shards"),
        pytest.param(2, (4,), (), id="min-shards-does-not-fit"),
        pytest.param(4, (4,), (), id="at-smallest-fit"),
        pytest.param(8, (4, 8), (), id="above"),
    ],
)
def test_capped_degrees(bound: int | None, big: tuple[int, ...], small: tuple[int, ...]) -> None:
    snap = _snapshot()
    cost = CostModel(snap.cluster, snap.catalog)
    assert capped_degrees(_huge(snap), cost, 0, bound) == big
    assert capped_degrees(_huge(snap), cost, 1, bound) == small
    assert cost.degrees_by_node(_huge(snap), bound) == (big, small), "one row per node"


def test_groups_for_keeps_the_smallest_fitting_degree_under_a_low_bound() -> None:
    snap = _snapshot()
    cost = CostModel(snap.cluster, snap.catalog)
    groups = groups_for(_huge(snap), snap, cost, bound=2)
    assert groups and {len(g) for g in groups} == {4}


@pytest.mark.parametrize(
    "config",
    [
        pytest.param(FateConfig(shards=False), id="no-shards"),
        pytest.param(FateConfig(max_shards=2), id="max-shards-below-fit"),
    ],
)
def test_fate_offers_the_smallest_fitting_layout(config: FateConfig) -> None:
    snap = _snapshot()
    groups = Fate("t", config).candidates(snap, CostModel(snap.cluster, snap.catalog), 0)
    assert groups and {len(g) for g in groups} == {4}
