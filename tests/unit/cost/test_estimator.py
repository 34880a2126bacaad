"""Table-driven cases for each cost tier and each state dimension."""

from __future__ import annotations

import pytest

from airflow_fate.cost.estimator import GB, GIB_IN_GB, CostModel, shard_efficiency
from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.graph import WorkloadGraph
from airflow_fate.state.cluster_state import (
    ClusterState,
    StageAssigned,
    StageFinished,
    StageStarted,
    WorkflowArrived,
)
from tests.conftest import make_catalog, make_cluster, make_workload, stage

HOST, DISK, REMOTE, NVLINK, NET = 25.0, 3.0, 1.25, 300.0, 12.5


def setup_state(stages: list[dict[str, object]]) -> tuple[ClusterState, CostModel]:
    cluster, catalog = make_cluster(), make_catalog()
    graph = WorkloadGraph.from_workload(make_workload(stages, copies=1), catalog)
    state = ClusterState(cluster, catalog, graph)
    state.apply(WorkflowArrived(0, 0.0))
    return state, CostModel(cluster, catalog)


def run_stage(state: ClusterState, uid: int, gpus: tuple[int, ...], t: float = 0.0) -> None:
    state.apply(StageAssigned(uid, gpus, t, 1.0))
    state.apply(StageStarted(uid, t))
    state.apply(StageFinished(uid, t + 1.0, 1.0))


def test_load_tiers() -> None:
    """remote store -> local disk -> host cache -> resident (per GPU group)."""
    state, cost = setup_state([stage("a"), stage("b", parents=["a"]), stage("c", parents=["a"])])
    a, b = state.graph.stages[0], state.graph.stages[1]
    weights_gb = 4.0 * GIB_IN_GB
    snap = state.snapshot()
    assert cost.load_time(a, (0,), snap) == pytest.approx(weights_gb / min(REMOTE, NET))
    run_stage(state, 0, (0,))
    state.now = 10.0  # a's fetch from the remote store is through
    snap = state.snapshot()
    assert cost.load_time(b, (0,), snap) == 0.0, "resident on the same GPU"
    assert cost.load_time(b, (1,), snap) == pytest.approx(weights_gb / HOST), (
        "host cache, same node"
    )
    assert cost.load_time(b, (4,), snap) == pytest.approx(weights_gb / REMOTE), "other node: remote"


def test_disk_tier_after_host_cache_eviction() -> None:
    cluster = make_cluster()
    catalog = make_catalog()
    graph = WorkloadGraph.from_workload(make_workload([stage("a")], copies=1), catalog)
    state = ClusterState(cluster, catalog, graph)
    # A node state with the model on disk but not in host cache.
    from airflow_fate.state.cluster_state import NodeState

    state._nodes[0] = NodeState(host_cache=(), disk=frozenset({"small-lm"}))
    snap = state.snapshot()
    cost = CostModel(cluster, catalog)
    assert cost.load_time(graph.stages[0], (0,), snap) == pytest.approx(4.0 * GIB_IN_GB / DISK)


@pytest.mark.parametrize(
    ("child_gpus", "expected"),
    [
        pytest.param((0,), 0.0, id="same-gpu"),
        pytest.param((1,), 1.0 * 1e6 / GB / NVLINK, id="same-node-nvlink"),
        pytest.param((4,), 1.0 * 1e6 / GB / NET, id="other-node"),
    ],
)
def test_input_transfer(child_gpus: tuple[int, ...], expected: float) -> None:
    state, cost = setup_state([stage("a", output_mb=1.0), stage("b", parents=["a"])])
    run_stage(state, 0, (0,))
    assert cost.input_time(state.graph.stages[1], child_gpus, state.snapshot()) == pytest.approx(
        expected
    )


def test_input_without_nvlink_goes_over_host_link() -> None:
    cluster, catalog = make_cluster(nvlink=False), make_catalog()
    graph = WorkloadGraph.from_workload(
        make_workload([stage("a"), stage("b", parents=["a"])], copies=1), catalog
    )
    state = ClusterState(cluster, catalog, graph)
    state.apply(WorkflowArrived(0, 0.0))
    run_stage(state, 0, (0,))
    got = CostModel(cluster, catalog).input_time(graph.stages[1], (1,), state.snapshot())
    assert got == pytest.approx(1e6 / GB / HOST)


@pytest.mark.parametrize(
    ("gpus", "warm"),
    [pytest.param((0,), True, id="prefix-warm"), pytest.param((1,), False, id="prefix-cold")],
)
def test_prefix_reuse(gpus: tuple[int, ...], warm: bool) -> None:
    pre = {"id": "sys", "tokens": 800}
    state, cost = setup_state(
        [stage("a", prefix=pre), stage("b", parents=["a"], prefix=pre, input_tokens=1000)]
    )
    run_stage(state, 0, (0,))
    b = state.graph.stages[1]
    est = cost.estimate(b, gpus, state.snapshot())
    assert est is not None
    uncached = 200 if warm else 1000
    assert est.prefill == pytest.approx(uncached / 20000)
    assert est.decode == pytest.approx(100 / 2000)


def test_prefix_of_other_model_is_not_reused() -> None:
    pre = {"id": "sys", "tokens": 800}
    state, cost = setup_state([stage("a", prefix=pre), stage("b", "mid-lm", ["a"], prefix=pre)])
    run_stage(state, 0, (0,))
    assert cost.reused_tokens(state.graph.stages[1], (0,), state.snapshot()) == 0


@pytest.mark.parametrize("k", [1, 2])
def test_shards_scale_rates_and_split_weights(k: int) -> None:
    state, cost = setup_state([stage("a", "mid-lm", input_tokens=12000, output_tokens=1200)])
    a = state.graph.stages[0]
    gpus = tuple(range(k))
    est = cost.estimate(a, gpus, state.snapshot())
    assert est is not None
    scale = k * shard_efficiency(k)
    assert est.prefill == pytest.approx(1.0 / scale)
    assert est.decode == pytest.approx(1.0 / scale)
    state.apply(StageAssigned(0, gpus, 0.0, 1.0))
    state.apply(StageStarted(0, 0.0))
    for g in gpus:
        assert state.gpu(g).weights_gib == pytest.approx(15.0 / k)


def test_shard_group_must_match_for_warm() -> None:
    state, cost = setup_state([stage("a", "mid-lm"), stage("b", "mid-lm", ["a"])])
    run_stage(state, 0, (0, 1))
    b = state.graph.stages[1]
    snap = state.snapshot()
    assert cost.load_time(b, (0, 1), snap) == 0.0
    assert cost.load_time(b, (0,), snap) > 0.0, "a 2-way shard is not a full copy"


def test_memory_infeasible_returns_none() -> None:
    state, cost = setup_state([stage("a", "big-lm")])
    a = state.graph.stages[0]
    snap = state.snapshot()
    assert cost.estimate(a, (8, 9), snap) is None, "small GPUs cannot hold 120 GiB in 2 shards"
    assert cost.estimate(a, (0, 1), snap) is not None


def test_wait_counts_busy_gpus() -> None:
    state, cost = setup_state([stage("a"), stage("b")])
    state.apply(StageAssigned(0, (0,), 0.0, 5.0))
    est = cost.estimate(state.graph.stages[1], (0,), state.snapshot())
    assert est is not None
    assert est.wait == pytest.approx(5.0)
    assert est.load == 0.0, "the queued stage loads the same model first"


def test_correction_factor_slows_rates() -> None:
    cluster, catalog = make_cluster(), make_catalog()
    base = CostModel(cluster, catalog).rates("small-lm", "big", 1)
    slow = CostModel(cluster, catalog, correction={("small-lm", "big"): 2.0}).rates(
        "small-lm", "big", 1
    )
    assert slow.prefill == pytest.approx(base.prefill / 2)


def test_queued_load_that_evicts_makes_a_resident_model_cold() -> None:
    """mid-lm is resident on GPU 0, but big-lm queued on (0, 1) evicts it first."""
    state, cost = setup_state(
        [stage("a", "mid-lm"), stage("big", "big-lm"), stage("c", "mid-lm", ["a"])]
    )
    run_stage(state, 0, (0,))
    c = state.graph.stages[2]
    assert cost.load_time(c, (0,), state.snapshot()) == 0.0, "resident, nothing queued"
    state.apply(StageAssigned(1, (0, 1), 1.0, 5.0))
    snap = state.snapshot()
    assert "mid-lm" in snap.gpus[0].resident_models, "still resident now"
    assert cost.load_time(c, (0,), snap) > 0.0, "60 GiB shard + 15 GiB exceed 72 GiB usable"
    assert (0,) not in snap.model_groups("mid-lm")
    assert (0, 1) in snap.model_groups("big-lm")
    big = state.graph.stages[1]
    assert cost.load_time(big, (0, 1), snap) > 0.0, "the queued stage itself loads cold"


def test_a_model_converted_on_load_is_bound_by_its_load_rate_on_every_tier() -> None:
    """``load_gbps``: each GPU converts its ``weights / k`` at that rate after the read, so
    a load takes the longer of the two; a GPU type's own figure wins over the model's."""
    slow = {
        "weights_gib": 4.0,
        "kv_bytes_per_token": 0,
        "prefill_tokens_per_s": 1000,
        "decode_tokens_per_s": 100,
        "max_shards": 2,
        "load_gbps": 0.5,
        "per_gpu_type": {
            "small": {"prefill_tokens_per_s": 500, "decode_tokens_per_s": 50, "load_gbps": 0.25}
        },
    }
    cluster, catalog = make_cluster(), make_catalog(**{"gguf-lm": slow})
    cost = CostModel(cluster, catalog)
    weights_gb = 4.0 * GIB_IN_GB
    assert cost.load_from("gguf-lm", 0, "remote") == pytest.approx(weights_gb / 0.5)
    assert cost.load_from("gguf-lm", 0, "host-cache", k=2) == pytest.approx(weights_gb / 2 / 0.5)
    assert cost.load_from("gguf-lm", 2, "disk") == pytest.approx(weights_gb / 0.25), "small type"
    assert cost.load_from("small-lm", 0, "remote") == pytest.approx(weights_gb / REMOTE), (
        "no load_gbps: read-bound"
    )
    # The cold-start bound may not exceed any first load: the widest group of the node.
    assert cost.first_load_time("gguf-lm", 0) == pytest.approx(
        max(weights_gb / REMOTE, weights_gb / 4 / 0.5)
    )

    graph = WorkloadGraph.from_workload(make_workload([stage("a", "gguf-lm")], copies=1), catalog)
    state = ClusterState(cluster, catalog, graph)
    state.apply(WorkflowArrived(0, 0.0))
    a = graph.stages[0]
    assert cost.load_time(a, (0,), state.snapshot()) == pytest.approx(weights_gb / 0.5)


def test_cpu_devices_sharing_cores_slow_each_other_down() -> None:
    """On a node with ``cpu_cores``, n devices at work at a stage's start (its own
    included) each work at cores / n: load, prefill and decode scale, transfers do not."""
    doc = make_cluster([("cpu", "big", 3)]).model_dump()
    shared = Cluster.model_validate({**doc, "nodes": [{**doc["nodes"][0], "cpu_cores": 2}]})
    catalog = make_catalog()
    stages = [stage("a"), stage("b"), stage("c")]
    graph = WorkloadGraph.from_workload(make_workload(stages, copies=1), catalog)
    state = ClusterState(shared, catalog, graph)
    state.apply(WorkflowArrived(0, 0.0))
    cost, alone = CostModel(shared, catalog), CostModel(make_cluster([("cpu", "big", 3)]), catalog)
    c = graph.stages[2]
    assert cost.contention((2,), state.snapshot()) == 1.0, "nothing else at work"
    for uid, g in ((0, 0), (1, 1)):
        state.apply(StageAssigned(uid, (g,), 0.0, 10.0))
        state.apply(StageStarted(uid, 0.0))
    snap = state.snapshot()
    assert cost.contention((2,), snap) == pytest.approx(1.5), "three devices on two cores"
    assert cost.contention((2,), snap, start=10.0) == 1.0, "the others are done by then"
    assert cost.contention((2,), snap, duration_s=12.5) == pytest.approx(1.3), (
        "the others are busy for 10 s of its 12.5 s: 1 + 0.8 + 0.8 devices on 2 cores"
    )
    slow, base = cost.run_cost(c, (2,), snap), alone.run_cost(c, (2,), snap)
    factor = cost.contention((2,), snap, duration_s=base.load + base.prefill + base.decode)
    assert factor > 1.0
    assert slow.load == pytest.approx(factor * base.load) and slow.load > 0
    assert slow.prefill == pytest.approx(factor * base.prefill)
    assert slow.decode == pytest.approx(factor * base.decode)
    state.apply(StageFinished(0, 4.0, 4.0))
    state.now = 4.0
    assert cost.contention((2,), state.snapshot()) == 1.0, "two devices, two cores"
