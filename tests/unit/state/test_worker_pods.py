"""Worker-pod hosting in `ClusterState` and the cost model: create, reuse, replace, expire.

A worker pod holds one GPU set and keeps what it loads while it lives; the first stage
on a set without a live pod pays the pod's start and loads cold; a pod for another set
on any of those GPUs is deleted with everything it held; an idle pod expires.
"""

from __future__ import annotations

import pytest

from airflow_fate.cost.estimator import CostModel
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

POD_START_S = 7.0
IDLE_S = 100.0


def _state(
    stages: list[dict[str, object]], mode: str = "worker-pods", *, prestart: bool = False
) -> ClusterState:
    cluster, catalog = make_cluster(), make_catalog()
    graph = WorkloadGraph.from_workload(make_workload(stages, copies=1), catalog)
    hosting = Hosting(
        mode=mode,  # type: ignore[arg-type]
        pod_start_s=POD_START_S,
        worker_idle_s=IDLE_S,
        prestart=prestart,
    )
    state = ClusterState(cluster, catalog, graph, hosting=hosting)
    state.apply(WorkflowArrived(0, 0.0))
    return state


def _run(state: ClusterState, uid: int, gpus: tuple[int, ...], t: float) -> bool:
    """Assign, start and finish ``uid`` on ``gpus`` at ``t``; whether a pod started."""
    state.apply(StageAssigned(uid, gpus, t, 1.0))
    effects = state.apply(StageStarted(uid, t))
    state.apply(StageFinished(uid, t + 1.0, 1.0))
    assert effects is not None
    return effects.pod_started


def _cost(state: ClusterState) -> CostModel:
    return CostModel(state.cluster, state.catalog)


def test_first_stage_on_a_gpu_set_starts_a_pod_and_the_next_reuses_it() -> None:
    state = _state([stage("a"), stage("b", parents=["a"])])
    cost = _cost(state)
    a, b = state.graph.stages
    cold = cost.cold_load_time("small-lm", (0,), state.snapshot())
    assert cost.load_time(a, (0,), state.snapshot()) == pytest.approx(POD_START_S + cold)
    assert _run(state, 0, (0,), 0.0) is True
    assert state.gpu(0).pod == (0,)
    snap = state.snapshot()
    assert cost.load_time(b, (0,), snap) == 0.0, "the pod kept the model"
    assert cost.load_time(b, (1,), snap) == pytest.approx(
        POD_START_S + cost.cold_load_time("small-lm", (1,), snap)
    ), "another GPU has no pod yet"
    assert _run(state, 1, (0,), 2.0) is False


def test_a_shard_group_replaces_the_pods_on_its_gpus_and_their_state() -> None:
    """Pods on GPUs 0 and 1 (each holding a model) give way to one pod for (0, 1); the
    single-GPU pods' models go with them, and a stage back on GPU 1 needs a new pod."""
    stages = [
        stage("a", prefix={"id": "sys", "tokens": 100}),
        stage("b"),
        stage("wide", parents=["a", "b"]),
        stage("after", parents=["wide"], prefix={"id": "sys", "tokens": 100}),
    ]
    state = _state(stages)
    cost = _cost(state)
    assert _run(state, 0, (0,), 0.0)
    assert _run(state, 1, (1,), 0.0)
    assert state.gpu(0).prefix_kv
    assert _run(state, 2, (0, 1), 2.0) is True
    for g in (0, 1):
        assert state.gpu(g).pod == (0, 1)
        assert [group for _, group, _ in state.gpu(g).resident] == [(0, 1)]
        assert state.gpu(g).prefix_kv == (), "the old pod's prefix KV went with it"
    after = state.graph.stages[3]
    snap = state.snapshot()
    assert cost.reused_tokens(after, (0,), snap) == 0
    assert cost.load_time(after, (0,), snap) >= POD_START_S


def test_an_idle_pod_expires_with_its_state() -> None:
    state = _state([stage("a"), stage("b", parents=["a"])])
    cost = _cost(state)
    b = state.graph.stages[1]
    _run(state, 0, (0,), 0.0)  # finishes at 1.0
    state.apply(WorkflowArrived(0, 1.0 + IDLE_S - 1))
    assert cost.load_time(b, (0,), state.snapshot()) == 0.0, "still within the idle limit"
    state.apply(WorkflowArrived(0, 1.0 + IDLE_S + 1))
    assert cost.load_time(b, (0,), state.snapshot()) >= POD_START_S, "expired"
    assert _run(state, 1, (0,), state.now) is True


def test_a_stage_queued_ahead_on_the_same_set_starts_the_pod_for_the_next() -> None:
    state = _state([stage("a"), stage("b")])
    cost = _cost(state)
    a, b = state.graph.stages
    state.apply(StageAssigned(0, (0,), 0.0, 5.0))
    snap = state.snapshot()
    assert cost.pod_ready(b, (0,), snap), "a's start brings the pod up before b runs"
    assert not cost.pod_ready(b, (0, 1), snap), "a's single-GPU pod would be replaced"
    assert not cost.pod_ready(a, (0,), snap), "a itself finds no pod"


def test_a_prestarted_pool_serves_single_gpus_and_gives_way_to_groups() -> None:
    state = _state([stage("a"), stage("b"), stage("wide", parents=["a"])], prestart=True)
    cost = _cost(state)
    a, _, wide = state.graph.stages
    snap = state.snapshot()
    assert all(state.gpu(g).pod == (g,) for g in range(len(state.cluster.gpus)))
    assert cost.pod_ready(a, (3,), snap)
    assert cost.load_time(a, (3,), snap) == pytest.approx(
        cost.cold_load_time("small-lm", (3,), snap)
    ), "an empty pod: a cold load, no pod start"
    assert _run(state, 0, (0,), 0.0) is False
    assert not cost.pod_ready(wide, (0, 1), state.snapshot())
    assert _run(state, 2, (0, 1), 2.0) is True


@pytest.mark.parametrize(
    ("mode", "starts", "second_load_is_zero"),
    [
        pytest.param("local", [False, False], True, id="local-workers"),
        pytest.param("worker-pods", [True, False], True, id="worker-pods"),
        pytest.param("pod-per-stage", [True, True], False, id="pod-per-stage"),
    ],
)
def test_each_hosting_mode_on_a_same_model_chain(
    mode: str, starts: list[bool], second_load_is_zero: bool
) -> None:
    state = _state([stage("a"), stage("b", parents=["a"])], mode=mode)
    cost = _cost(state)
    seen = [_run(state, 0, (0,), 0.0)]
    load_b = cost.load_time(state.graph.stages[1], (0,), state.snapshot())
    seen.append(_run(state, 1, (0,), 2.0))
    assert seen == starts
    assert (load_b == 0.0) is second_load_is_zero


def test_local_workers_are_replaced_like_pods_but_start_free() -> None:
    """Both local launchers retire the single-GPU workers under a shard group (and the
    group's worker before a single GPU's): the state and the cost model must say so, or
    they price a model as warm on a worker that no longer exists."""
    stages = [
        stage("a", prefix={"id": "sys", "tokens": 100}),
        stage("wide", parents=["a"]),
        stage("after", parents=["wide"], prefix={"id": "sys", "tokens": 100}),
    ]
    cluster, catalog = make_cluster(), make_catalog()
    graph = WorkloadGraph.from_workload(make_workload(stages, copies=1), catalog)
    state = ClusterState(cluster, catalog, graph, hosting=Hosting())
    state.apply(WorkflowArrived(0, 0.0))
    cost = _cost(state)
    assert state.gpu(0).pod == (0,), "one worker per GPU from the start"
    assert _run(state, 0, (0,), 0.0) is False, "a local worker is no pod"
    assert _run(state, 1, (0, 1), 2.0) is False
    assert state.gpu(0).pod == (0, 1)
    assert [group for _, group, _ in state.gpu(0).resident] == [(0, 1)]
    assert state.gpu(0).prefix_kv == ()
    after = state.graph.stages[2]
    snap = state.snapshot()
    cold = cost.cold_load_time(after.model, (0,), snap)
    assert cost.load_time(after, (0,), snap) == pytest.approx(cold), "cold, with no start cost"
    assert cost.reused_tokens(after, (0,), snap) == 0


def test_an_adopted_shard_group_worker_replaces_the_single_gpu_ones_the_state_began_with() -> None:
    state = _state([stage("a"), stage("b"), stage("c")], prestart=True)
    assert [state.gpu(g).pod for g in (0, 1)] == [(0,), (1,)]
    state.adopt_worker((0, 1))
    assert [state.gpu(g).pod for g in (0, 1)] == [(0, 1), (0, 1)]
    assert not _run(state, 0, (0, 1), 1.0), "the adopted worker serves its own set"
    assert _run(state, 1, (0,), 3.0), "one of its GPUs alone needs a worker of its own"
    assert state.gpu(1).pod is None, "which replaced the shard group's"
    assert not _run(state, 2, (2,), 5.0), "other GPUs keep their single-GPU workers"


def test_an_adopted_worker_keeps_what_is_preloaded_after_it_and_starts_its_idle_clock() -> None:
    state = _state([stage("a")], prestart=False)
    state.now = 50.0
    state.adopt_worker((2,))
    state.preload("small-lm", (2,))
    state.adopt_worker((2,))  # told twice (a second reconcile): nothing is lost
    assert state.gpu(2).pod == (2,) and state.gpu(2).holds("small-lm", (2,))
    assert state.gpu(2).pod_alive((2,), 50.0 + IDLE_S, IDLE_S)
    assert not state.gpu(2).pod_alive((2,), 51.0 + IDLE_S, IDLE_S)


def test_a_pod_per_stage_has_no_workers_to_adopt() -> None:
    state = _state([stage("a")], mode="pod-per-stage")
    state.adopt_worker((0, 1))
    assert state.gpu(0).pod is None and state.gpu(1).pod is None
