"""ClusterState: readiness, queues, LRU residency, prefix-KV budget, host cache."""

from __future__ import annotations

import dataclasses

import pytest

from airflow_fate.domain.graph import WorkloadGraph
from airflow_fate.state.cluster_state import (
    ClusterState,
    StageAssigned,
    StageFinished,
    StageStarted,
    WorkflowArrived,
)
from airflow_fate.state.hosting import Hosting
from tests.conftest import make_catalog, make_cluster, make_workload, stage


def build(stages: list[dict[str, object]], **models: dict[str, object]) -> ClusterState:
    cluster, catalog = make_cluster(), make_catalog(**models)
    graph = WorkloadGraph.from_workload(make_workload(stages, copies=1), catalog)
    state = ClusterState(cluster, catalog, graph)
    state.apply(WorkflowArrived(0, 0.0))
    return state


def run(state: ClusterState, uid: int, gpus: tuple[int, ...], t: float) -> None:
    state.apply(StageAssigned(uid, gpus, t, 1.0))
    state.apply(StageStarted(uid, t))
    state.apply(StageFinished(uid, t + 1.0, 1.0))


def test_children_become_ready_when_all_parents_finish() -> None:
    state = build([stage("a"), stage("b"), stage("c", parents=["a", "b"])])
    assert state.ready == {0, 1}
    run(state, 0, (0,), 0.0)
    assert state.ready == {1}
    run(state, 1, (1,), 1.0)
    assert state.ready == {2}


def test_snapshot_is_not_changed_by_later_events() -> None:
    state = build([stage("a")])
    snap = state.snapshot()
    run(state, 0, (0,), 0.0)
    assert snap.gpus[0].resident == ()
    assert snap.frontier == (0,)
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.now = 3.0  # type: ignore[misc]


def test_a_reserved_snapshot_answers_as_one_built_afresh() -> None:
    """`Snapshot.reserve` carries the parent's prefix holders and wait order to the child,
    looking again only at the GPUs it reserved: the answers equal a fresh snapshot's."""
    shared = {"id": "sys", "tokens": 200}
    state = build([stage("a", prefix=shared), stage("b", prefix=shared), stage("c")])
    run(state, 0, (0,), 0.0)
    snap = state.snapshot()
    key = ("small-lm", "sys")
    assert snap.prefix_gpus(key) == {0} and snap.wait_order[0] == (0, 1, 2, 3)
    child = snap.reserve(1, (1,), 5.0)
    grandchild = child.reserve(2, (4, 5), 3.0)
    for view in (child, grandchild):
        fresh = dataclasses.replace(view)
        assert view.prefix_gpus(key) == fresh.prefix_gpus(key)
        assert view.wait_order == fresh.wait_order
    assert child.prefix_gpus(key) == {0, 1}, "the queued stage will compute the prefix"
    assert child.wait_order[0] == (0, 2, 3, 1), "GPU 1 is now busy for 5 s"
    assert grandchild.wait_order[1] == (6, 7, 4, 5)


def test_queue_order_and_startable() -> None:
    state = build([stage("a"), stage("b")])
    state.apply(StageAssigned(0, (0,), 0.0, 2.0))
    state.apply(StageAssigned(1, (0,), 0.0, 3.0))
    assert state.gpu(0).busy_until == pytest.approx(5.0)
    assert state.startable(0) and not state.startable(1)
    state.apply(StageStarted(0, 0.0))
    assert not state.startable(1), "GPU busy"
    state.apply(StageFinished(0, 2.5, 2.5))
    assert state.startable(1)
    assert state.gpu(0).busy_until == pytest.approx(5.5), "re-estimated from the actual finish"


def test_lru_eviction_keeps_usable_memory() -> None:
    # usable 72 GiB on "big" GPUs: 30 + 30 fit, a third 30 evicts the least recent.
    models = {
        f"m{i}": {
            "weights_gib": 30.0,
            "kv_bytes_per_token": 0,
            "prefill_tokens_per_s": 1000,
            "decode_tokens_per_s": 100,
        }
        for i in range(3)
    }
    state = build(
        [stage("a", "m0"), stage("b", "m1"), stage("c", "m0"), stage("d", "m2")], **models
    )
    run(state, 0, (0,), 0.0)
    run(state, 1, (0,), 1.0)
    run(state, 2, (0,), 2.0)  # touches m0: m1 is now least recent
    state.apply(StageAssigned(3, (0,), 3.0, 1.0))
    effects = state.apply(StageStarted(3, 3.0))
    assert effects is not None and effects.evictions == 1
    assert state.gpu(0).resident_models == ("m0", "m2")


def test_prefix_kv_lru_within_budget() -> None:
    # prefix budget = 80 GiB * 0.05 = 4 GiB; each prefix 2.5 GiB -> only one fits.
    big_kv = {
        "weights_gib": 1.0,
        "kv_bytes_per_token": 2**20,
        "prefill_tokens_per_s": 1000,
        "decode_tokens_per_s": 100,
    }
    state = build(
        [
            stage("a", "kvm", prefix={"id": "p1", "tokens": 2560}, input_tokens=3000),
            stage("b", "kvm", prefix={"id": "p2", "tokens": 2560}, input_tokens=3000),
        ],
        kvm=big_kv,
    )
    run(state, 0, (0,), 0.0)
    assert [k for k, _ in state.gpu(0).prefix_kv] == [("kvm", "p1")]
    run(state, 1, (0,), 1.0)
    assert [k for k, _ in state.gpu(0).prefix_kv] == [("kvm", "p2")]


def test_load_puts_model_in_host_cache_and_disk() -> None:
    state = build([stage("a")])
    run(state, 0, (0,), 0.0)
    node = state.node(0)
    assert node.cached("small-lm") and "small-lm" in node.disk
    assert not state.node(1).cached("small-lm")


def test_a_second_load_on_the_node_waits_for_the_first_to_bring_the_weights() -> None:
    """The host cache and disk get a model when the load that fetches it is through: a
    load of it on another GPU of the node meanwhile ends no sooner (the same bytes)."""
    from airflow_fate.cost.estimator import CostModel

    state = build([stage("a"), stage("b")])
    cost = CostModel(state.cluster, state.catalog)
    remote = cost.cold_load_time("small-lm", (0,), state.snapshot())
    state.apply(StageAssigned(0, (0,), 0.0, remote + 1.0))
    state.apply(StageStarted(0, 0.0))
    host = 4.0 * 1.073741824 / 25.0  # 4 GiB over one GPU's PCIe link
    assert remote == pytest.approx(4.0 * 1.073741824 / 1.25)  # remote store
    for now, expected in ((1.0, remote - 1.0), (remote - host / 2, host), (remote + 5.0, host)):
        state.now = now
        assert cost.cold_load_time("small-lm", (1,), state.snapshot()) == pytest.approx(expected)
    assert cost.cold_load_time("small-lm", (4,), state.snapshot()) == pytest.approx(remote)


def test_a_fill_from_local_disk_is_waited_for_at_disk_speed() -> None:
    from airflow_fate.cost.estimator import CostModel

    state = build([stage("a"), stage("b"), stage("c")])
    cost = CostModel(state.cluster, state.catalog)
    run(state, 0, (0,), 0.0)  # fetched once: on the node's disk and in its cache
    evict = dataclasses.replace(state.node(0), host_cache=())
    state._nodes[0] = evict  # the page cache dropped it; the disk keeps it
    state.now = 100.0  # long after that fetch
    disk = cost.cold_load_time("small-lm", (0,), state.snapshot())
    assert disk == pytest.approx(4.0 * 1.073741824 / 3.0)
    state.now = 200.0
    state.apply(StageAssigned(1, (1,), 200.0, 1.0))
    state.apply(StageStarted(1, 200.0))  # GPU 1 reads it from disk back into the cache
    assert state.node(0).fills["small-lm"] == (200.0, True)
    state.now = 200.5
    assert cost.cold_load_time("small-lm", (2,), state.snapshot()) == pytest.approx(disk - 0.5)


def test_models_on_disk_load_from_disk_from_the_start() -> None:
    """A node's ``models_on_disk`` (pre-pulled weights) is on its disk before any load:
    the first load there reads local disk, elsewhere the remote store."""
    from airflow_fate.cost.estimator import CostModel

    cluster = make_cluster()
    nodes = [cluster.nodes[0].model_copy(update={"models_on_disk": ("small-lm",)})]
    cluster = cluster.model_copy(update={"nodes": nodes + list(cluster.nodes[1:])})
    catalog = make_catalog()
    graph = WorkloadGraph.from_workload(make_workload([stage("a")], copies=1), catalog)
    state = ClusterState(cluster, catalog, graph)
    cost = CostModel(cluster, catalog)
    snap = state.snapshot()
    assert state.node(0).disk == {"small-lm"} and not state.node(1).disk
    assert cost.cold_load_time("small-lm", (0,), snap) == pytest.approx(4.0 * 1.073741824 / 3.0)
    assert cost.cold_load_time("small-lm", (4,), snap) == pytest.approx(4.0 * 1.073741824 / 1.25)


def test_assigning_a_stage_that_is_not_ready_fails() -> None:
    state = build([stage("a"), stage("b", parents=["a"])])
    with pytest.raises(ValueError, match="not ready"):
        state.apply(StageAssigned(1, (0,), 0.0, 1.0))


def test_a_process_per_stage_leaves_nothing_on_the_gpu() -> None:
    """Pods free their GPUs on exit: the next stage loads again (from the host cache) and
    reuses no prefix; with long-lived workers the same stage finds both warm."""
    from airflow_fate.cost.estimator import CostModel

    stages = [
        stage("a", prefix={"id": "sys", "tokens": 200}),
        stage("b", parents=["a"], prefix={"id": "sys", "tokens": 200}),
    ]
    cluster, catalog = make_cluster(), make_catalog()
    cost = CostModel(cluster, catalog)
    loads: dict[bool, float] = {}
    for keep in (True, False):
        graph = WorkloadGraph.from_workload(make_workload(stages, copies=1), catalog)
        hosting = Hosting() if keep else Hosting(mode="pod-per-stage")
        state = ClusterState(cluster, catalog, graph, hosting=hosting)
        state.apply(WorkflowArrived(0, 0.0))
        run(state, 0, (0,), 0.0)
        snap = state.snapshot()
        b = graph.stages[1]
        loads[keep] = cost.load_time(b, (0,), snap)
        assert bool(state.gpu(0).resident) is keep
        assert bool(state.gpu(0).prefix_kv) is keep
        assert state.node(0).cached("small-lm"), "the node's host cache outlives the pod"
        assert cost.reused_tokens(b, (0,), snap) == (200 if keep else 0)
    assert loads[True] == 0.0
    assert loads[False] > 0
    assert loads[False] == pytest.approx(cost.cold_load_time("small-lm", (0,), snap))


def test_a_queued_load_waits_only_for_what_is_left_of_the_fetch_when_it_starts() -> None:
    """A stage queued behind a busy GPU starts later, so less of the node's fetch is left:
    the estimate prices its load from its start, not from now."""
    from airflow_fate.cost.estimator import CostModel

    state = build([stage("a"), stage("b"), stage("c", "mid-lm")])
    cost = CostModel(state.cluster, state.catalog)
    remote = cost.cold_load_time("small-lm", (0,), state.snapshot())
    host = 4.0 * 1.073741824 / 25.0
    state.apply(StageAssigned(0, (0,), 0.0, remote + 1.0))
    state.apply(StageStarted(0, 0.0))  # fetches small-lm to node 0
    state.apply(StageAssigned(2, (1,), 0.0, 2.0))
    state.apply(StageStarted(2, 0.0))  # GPU 1 busy until 2 s
    state.now = 1.0
    snap = state.snapshot()
    est = cost.estimate(state.graph.stages[1], (1,), snap)
    assert est is not None and est.wait == pytest.approx(1.0)
    assert est.load == pytest.approx(remote - 2.0)
    assert cost.fetch_wait("small-lm", (1,), snap) == pytest.approx(remote - 1.0 - host)
    assert cost.fetch_wait("small-lm", (1,), snap, start=2.0) == pytest.approx(remote - 2.0 - host)
    assert cost.fetch_wait("small-lm", (1,), snap, start=remote) == 0.0
    assert cost.fetch_wait("small-lm", (4,), snap) == 0.0, "no fetch in flight on node 1"


def test_a_load_waiting_for_a_fetch_ends_when_the_fetch_really_ends() -> None:
    """Simulated noise draws a fetch's duration once: a second reader of the same bytes
    ends with it, and only its own read from the host cache is drawn."""
    from airflow_fate.cost.estimator import CostModel
    from airflow_fate.sim.timing import NoisyTiming

    state = build([stage("a"), stage("b")])
    cost = CostModel(state.cluster, state.catalog)
    timing = NoisyTiming(cost, noise=0.5, seed=7)
    first = timing.actual(state.graph.stages[0], (0,), state.snapshot())
    nominal = cost.cold_load_time("small-lm", (0,), state.snapshot())
    assert first.cost.load != pytest.approx(nominal), "the draw moved the fetch"
    state.apply(StageAssigned(0, (0,), 0.0, first.cost.run))
    state.apply(StageStarted(0, 0.0))
    state.now = 1.0
    second = timing.actual(state.graph.stages[1], (1,), state.snapshot())
    host = 4.0 * 1.073741824 / 25.0
    assert first.cost.load - 1.0 > 10 * host, "the fetch outlasts any draw of the read"
    assert second.cost.load == pytest.approx(first.cost.load - 1.0)


def test_a_fetch_seen_through_is_not_waited_for_again() -> None:
    """A fetch can end sooner than estimated. Once a stage that loaded the model there has
    finished, its load (and so the fetch it read) is known to be through: a later load on
    the node reads the host cache without waiting for the estimated end of that fetch."""
    from airflow_fate.cost.estimator import CostModel

    state = build([stage("a"), stage("b"), stage("c")])
    cost = CostModel(state.cluster, state.catalog)
    remote = cost.cold_load_time("small-lm", (0,), state.snapshot())
    host = 4.0 * 1.073741824 / 25.0
    state.apply(StageAssigned(0, (0,), 0.0, remote))
    state.apply(StageStarted(0, 0.0))  # fetches small-lm to node 0
    state.now = remote / 2
    assert cost.fetch_wait("small-lm", (1,), state.snapshot()) == pytest.approx(
        remote / 2 - host
    ), "in flight: a second reader waits for the estimated end"
    state.apply(StageFinished(0, remote / 2, remote / 2))  # faster than estimated
    snap = state.snapshot()
    assert "small-lm" not in state.node(0).fills
    assert cost.fetch_wait("small-lm", (1,), snap) == 0.0
    assert cost.cold_load_time("small-lm", (1,), snap) == pytest.approx(host)


def test_a_finished_stage_does_not_end_a_later_fetch() -> None:
    """Only a load that began once the fetch was under way saw it through: a stage that
    loaded before the node's cache lost the model says nothing of the fetch that reads
    it back."""
    state = build([stage("a"), stage("b"), stage("c")])
    state.apply(StageAssigned(0, (0,), 0.0, 5.0))
    state.apply(StageStarted(0, 0.0))
    state._nodes[0] = dataclasses.replace(state.node(0), host_cache=())  # cache dropped it
    state.now = 3.0
    state.apply(StageAssigned(1, (1,), 3.0, 1.0))
    state.apply(StageStarted(1, 3.0))  # reads the disk back into the cache: a new fill
    state.apply(StageFinished(0, 5.0, 5.0))
    assert state.node(0).fills["small-lm"] == (3.0, True)
    state.apply(StageFinished(1, 6.0, 3.0))
    assert "small-lm" not in state.node(0).fills
