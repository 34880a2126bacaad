"""`FrontierPlanner` with worker pods: measured pod starts and lost workers change what it
predicts for the next stage on a GPU set."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from airflow_fate.cost.estimator import CostModel
from airflow_fate.executor.frontier import FrontierPlanner
from airflow_fate.executor.layout import build_layout
from airflow_fate.planner.registry import make_policy
from airflow_fate.state.hosting import Hosting
from tests.conftest import make_catalog, make_cluster
from tests.unit.executor.conftest import key, meta, node

TASKS = [node("a", config=meta()), node("b", "a", config=meta())]


def _planner(pod_start_s: float) -> FrontierPlanner:
    cluster = make_cluster([("n0", "big", 1)])
    catalog = make_catalog()
    hosting = Hosting("worker-pods", pod_start_s=pod_start_s, worker_idle_s=600.0, prestart=False)
    return FrontierPlanner(
        cluster, catalog, make_policy("greedy-eft"), CostModel(cluster, catalog), hosting=hosting
    )


def _first(planner: FrontierPlanner) -> float:
    layout = build_layout(TASKS, planner.catalog, planner.cluster)
    planner.add_run("d", "r1", layout, 0.0)
    planner.offer(key("a"), layout.stages["a"], 0.0)
    [a] = planner.decide(0.0)
    return a.predicted.load


def test_a_measured_pod_start_corrects_the_next_prediction() -> None:
    guessed, measured = _planner(5.0), _planner(5.0)
    assert measured.observe_pod_start(45.0) == pytest.approx(45.0)
    assert measured.state.hosting.pod_start_s == pytest.approx(45.0)
    assert _first(measured) == pytest.approx(_first(guessed) + 40.0)


def test_a_lost_worker_makes_the_next_stage_there_cold_again() -> None:
    planner = _planner(5.0)
    layout = build_layout(TASKS, planner.catalog, planner.cluster)
    planner.add_run("d", "r1", layout, 0.0)
    planner.offer(key("a"), layout.stages["a"], 0.0)
    [a] = planner.decide(0.0)
    planner.finish(key("a"), 10.0, 10.0)
    planner.drop_worker(a.gpus)
    planner.offer(key("b"), layout.stages["b"], 11.0)
    [b] = planner.decide(11.0)
    assert b.gpus == a.gpus and b.predicted.load >= 5.0, "a new pod and a cold load"


def test_a_restart_tells_the_planner_the_exact_gpu_set_of_each_adopted_worker() -> None:
    from airflow_fate.executor.restore import Restorer  # airflow: only here

    cluster, catalog = make_cluster([("n0", "big", 4)]), make_catalog()
    hosting = Hosting("worker-pods", pod_start_s=5.0, worker_idle_s=600.0, prestart=True)
    planner = FrontierPlanner(
        cluster, catalog, make_policy("greedy-eft"), CostModel(cluster, catalog), hosting=hosting
    )
    store = SimpleNamespace(residency=lambda: [])
    rt = SimpleNamespace(store=store, planner=planner, cluster=cluster)
    restorer = Restorer(rt, lambda dag_id, run_id: build_layout([], catalog, cluster))  # type: ignore[arg-type]

    # An idle pair pod that holds nothing and one pod that holds a model; GPU 3's pod is
    # gone (not live): the state keeps the single-GPU pod the executor starts there.
    held = {(0, 1): (), (2,): ("small-lm",)}
    assert restorer.residency({0, 1, 2}, held) == 1
    assert [planner.state.gpu(g).pod for g in range(4)] == [(0, 1), (0, 1), (2,), (3,)]
    assert planner.state.gpu(2).holds("small-lm", (2,))
