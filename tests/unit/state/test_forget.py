"""Finished workflows leave the graph and the state; the live ones keep everything,
renumbered (`WorkloadGraph.without`, `ClusterState.forget`, `Dispatcher.forget`)."""

from __future__ import annotations

import pytest

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.graph import WorkloadGraph
from airflow_fate.planner.registry import make_policy
from airflow_fate.spine.dispatch import Dispatcher
from airflow_fate.state.cluster_state import ClusterState
from tests.conftest import chain, diamond, make_catalog, make_cluster, make_workload


def test_without_renumbers_the_kept_workflows_densely() -> None:
    catalog = make_catalog()
    graph = WorkloadGraph.from_workload(make_workload(diamond(), copies=3), catalog)
    kept, moved = graph.without({0, 2})
    alone = WorkloadGraph.from_workload(make_workload(diamond(), copies=3), catalog)
    middle = alone.workflows[1]
    assert dict(moved.workflows) == {1: 0}
    assert dict(moved.stages) == {u: i for i, u in enumerate(middle.stages)}
    assert [s.uid for s in kept.stages] == list(range(len(middle.stages)))
    for old in middle.stages:
        new = kept.stages[moved.stages[old]]
        before = alone.stages[old]
        assert (new.stage_id, new.workflow_id, new.workflow) == (
            before.stage_id,
            before.workflow_id,
            0,
        )
        assert new.parents == tuple(moved.stages[p] for p in before.parents)
        assert new.children == tuple(moved.stages[c] for c in before.children)


def _dispatcher(copies: int) -> Dispatcher:
    cluster, catalog = make_cluster(), make_catalog()
    graph = WorkloadGraph.from_workload(make_workload(chain(2), copies=copies), catalog)
    dispatch = Dispatcher(
        ClusterState(cluster, catalog, graph),
        CostModel(cluster, catalog),
        make_policy("greedy-eft"),
    )
    for wf in range(copies):
        dispatch.arrive(wf, 0.0)
    return dispatch


def test_forget_keeps_the_live_workflow_where_it_was() -> None:
    dispatch = _dispatcher(copies=2)
    state = dispatch.state
    plan = dispatch.decide(0.0)
    assert plan is not None
    for uid in (0, 2):  # the first stage of each chain
        dispatch.started(uid, 0.0)
        dispatch.finished(uid, 1.0, 1.0)
    parent_gpus = state.placement_of(2)
    dispatch.decide(1.0)
    dispatch.started(1, 1.0)
    dispatch.finished(1, 2.0, 1.0)  # workflow 0 is done; workflow 1 waits on its child

    moved = dispatch.forget({0}, make_policy("greedy-eft"))

    assert dict(moved.stages) == {2: 0, 3: 1} and len(state.graph.stages) == 2
    assert state.placement_of(0) == parent_gpus  # the parent's output still lives there
    assert state.is_finished(0) and not state.is_finished(1)
    assert state.snapshot().arrived == {0: 0.0}
    assert state.placement_of(1) is not None  # the child was reserved before forgetting
    [head] = dispatch.startable(list(range(len(state.cluster.gpus))))
    assert head == 1
    dispatch.started(1, 2.0)
    assert state.gpu(state.placement_of(1)[0]).running == 1
    dispatch.finished(1, 3.0, 1.0)
    assert state.ready == frozenset()


def test_forget_refuses_a_workflow_that_still_runs() -> None:
    dispatch = _dispatcher(copies=1)
    dispatch.decide(0.0)
    dispatch.started(0, 0.0)
    with pytest.raises(ValueError, match="queued or running on GPU"):
        dispatch.forget({0}, make_policy("greedy-eft"))
