"""The shared-module additions the executor relies on: graphs extended while running and
a dispatcher frontier narrowed to eligible stages."""

from __future__ import annotations

import pytest

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.graph import WorkloadGraph
from airflow_fate.planner.registry import make_policy
from airflow_fate.spine.dispatch import Dispatcher
from airflow_fate.state.cluster_state import ClusterState
from tests.conftest import chain, diamond, make_catalog, make_cluster, make_workload


def test_extend_appends_and_keeps_uids() -> None:
    catalog = make_catalog()
    whole = WorkloadGraph.from_workload(make_workload(diamond(), copies=2), catalog)
    first = WorkloadGraph.from_workload(make_workload(diamond(), copies=1), catalog)
    grown = first.extend(make_workload(diamond(), copies=2).workflows[1:], catalog)
    assert grown == whole
    assert grown.stages[: len(first.stages)] == first.stages


def test_state_accepts_only_extensions() -> None:
    cluster, catalog = make_cluster(), make_catalog()
    graph = WorkloadGraph.from_workload(make_workload(chain(2), copies=1), catalog)
    state = ClusterState(cluster, catalog, graph)
    state.extend_graph(graph.extend(make_workload(diamond(), copies=1).workflows, catalog))
    assert len(state.graph.workflows) == 2
    other = WorkloadGraph.from_workload(make_workload(diamond(), copies=1), catalog)
    with pytest.raises(ValueError, match="does not extend"):
        state.extend_graph(other)


def test_decide_plans_only_eligible_ready_stages() -> None:
    cluster, catalog = make_cluster(), make_catalog()
    graph = WorkloadGraph.from_workload(make_workload(chain(1), copies=3), catalog)
    state = ClusterState(cluster, catalog, graph)
    dispatch = Dispatcher(state, CostModel(cluster, catalog), make_policy("greedy-eft"))
    for wf in range(3):
        dispatch.arrive(wf, 0.0)
    assert dispatch.decide(0.0, eligible=[]) is None
    plan = dispatch.decide(0.0, eligible=[1])
    assert plan is not None and [a.stage for a in plan.assignments] == [1]
    assert state.ready == frozenset({0, 2})
    plan = dispatch.decide(0.0)
    assert plan is not None and {a.stage for a in plan.assignments} == {0, 2}
