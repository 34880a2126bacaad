"""`ClusterState.drop_worker`: a worker lost mid-run takes what it held with it."""

from __future__ import annotations

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


def _state() -> ClusterState:
    cluster, catalog = make_cluster(), make_catalog()
    stages = [stage("a", prefix={"id": "sys", "tokens": 500}), stage("b", parents=["a"])]
    graph = WorkloadGraph.from_workload(make_workload(stages, copies=1), catalog)
    hosting = Hosting(mode="worker-pods", pod_start_s=5.0, worker_idle_s=100.0, prestart=False)
    state = ClusterState(cluster, catalog, graph, hosting=hosting)
    state.apply(WorkflowArrived(0, 0.0))
    return state


def test_a_lost_worker_leaves_nothing_resident_and_no_pod() -> None:
    state = _state()
    a = state.graph.stages[0]
    state.apply(StageAssigned(a.uid, (0, 1), 0.0, 1.0))
    state.apply(StageStarted(a.uid, 0.0))
    state.apply(StageFinished(a.uid, 1.0, 1.0))
    assert state.gpu(0).resident and state.gpu(0).prefix_kv and state.gpu(0).pod == (0, 1)

    state.drop_worker((1,))  # one GPU named: the whole pod (both GPUs) is gone

    for g in (0, 1):
        assert (state.gpu(g).resident, state.gpu(g).prefix_kv, state.gpu(g).pod) == ((), (), None)


def test_the_next_stage_there_starts_a_new_pod() -> None:
    state = _state()
    a, b = state.graph.stages
    state.apply(StageAssigned(a.uid, (0,), 0.0, 1.0))
    state.apply(StageStarted(a.uid, 0.0))
    state.apply(StageFinished(a.uid, 1.0, 1.0))
    state.drop_worker((0,))
    state.apply(StageAssigned(b.uid, (0,), 2.0, 1.0))
    effects = state.apply(StageStarted(b.uid, 2.0))
    assert effects is not None and effects.pod_started and effects.loaded_gpus == 1
