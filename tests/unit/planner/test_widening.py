"""FATE widens a stage beyond its narrowest group only when that costs few GPU-seconds.

A cold load from disk or the remote store reads the weights once per node whatever the
group's width, so a wide group spends most of its run holding idle GPUs; a stage whose
run is compute splits across the group and may widen.
"""

from __future__ import annotations

from dataclasses import replace

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.graph import WorkloadGraph
from airflow_fate.domain.plan import StageCost
from airflow_fate.planner.fate import Fate, FateConfig
from airflow_fate.planner.fate.policy import _worth_widening
from airflow_fate.state.cluster_state import ClusterState, Snapshot, WorkflowArrived
from tests.conftest import make_catalog, make_cluster, make_workload, stage


def _snapshot(
    stages: list[dict[str, object]], *, preload: tuple[str, tuple[int, ...]] | None = None
) -> Snapshot:
    cluster, catalog = make_cluster(), make_catalog()
    graph = WorkloadGraph.from_workload(make_workload(stages, copies=1), catalog)
    state = ClusterState(cluster, catalog, graph)
    if preload is not None:
        state.preload(*preload)
    state.apply(WorkflowArrived(0, 0.0))
    return state.snapshot()


def _widths(snap: Snapshot, config: FateConfig) -> set[int]:
    fate = Fate("t", replace(config, top_k=50, prefilter=50))
    scored = fate.score_frontier(snap, CostModel(snap.cluster, snap.catalog))
    return {len(o.gpus) for o in scored[0]}


def _cost(run: float) -> StageCost:
    return StageCost(wait=0.0, load=run, input=0.0, prefill=0.0, decode=0.0)


def test_the_rule_compares_gpu_seconds_with_the_narrowest_group_per_node() -> None:
    snap = _snapshot([stage("a")])
    quick = [
        (10.0, (0, 1), _cost(10.0)),  # narrowest on n0: 20 GPU-s
        (6.0, (0, 1, 2, 3), _cost(6.0)),  # 24 GPU-s: within 1.3x, kept
        (9.0, (4, 5, 6, 7), _cost(9.0)),  # n1's narrowest: kept whatever it costs
    ]
    kept = _worth_widening(quick, snap, slack=0.3)
    assert [g for _, g, _ in kept] == [(0, 1), (0, 1, 2, 3), (4, 5, 6, 7)]
    wider = [*quick, (9.5, (0, 1, 2, 3), _cost(9.5))]  # 38 GPU-s: 1.9x, dropped
    assert (0, 1, 2, 3) in [g for _, g, _ in _worth_widening(wider[1:2], snap, 0.3)]
    assert [g for _, g, _ in _worth_widening([quick[0], wider[-1]], snap, 0.3)] == [(0, 1)]


def test_a_cold_load_from_the_remote_store_is_not_widened() -> None:
    """big-lm's first load reads 120 GiB at the store's 1.25 GB/s: about the same on 2 or
    4 GPUs, so 4 would hold twice the GPUs for the same finish. Without the rule FATE
    offers the 4-GPU group on an idle node (the case that blocked whole nodes)."""
    snap = _snapshot([stage("a", "big-lm")])
    assert _widths(snap, FateConfig(widen_slack=None)) == {2, 4}
    assert _widths(snap, FateConfig(widen_slack=0.3)) == {2}


def test_a_compute_bound_stage_may_still_widen() -> None:
    """Resident on 4 GPUs (2 would read it from the host cache first), the run is mostly
    prefill and decode, which split: 4 GPUs cost about the GPU-seconds of 2."""
    long_decode = stage("a", "big-lm", input_tokens=60000, output_tokens=4000)
    snap = _snapshot([long_decode], preload=("big-lm", (0, 1, 2, 3)))
    assert 4 in _widths(snap, FateConfig(widen_slack=0.3))
    assert 4 not in _widths(snap, FateConfig(widen_slack=0.0)), "no slack: never wider"
