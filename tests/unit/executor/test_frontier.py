"""`FrontierPlanner`: queued tasks through the shared dispatcher, and the edge cases of
Airflow's world (CPU tasks between stages, retries, skipped parents, revocations,
restarts)."""

from __future__ import annotations

import pytest

from airflow_fate.executor.layout import build_layout
from airflow_fate.operators.metadata import read_metadata
from airflow_fate.planner.registry import policy_names
from tests.unit.executor.conftest import key, meta, node, planner_for

RAG = [
    node("embed", config=meta("embed", output_tokens=0)),
    node("tool", "embed"),
    node("answer", "tool", config=meta()),
    node("judge", "answer", config=meta()),
]


def _md(config):
    m = read_metadata(config)
    assert m is not None
    return m


def _run(planner, tasks=RAG, run_id="r1"):
    layout = build_layout(tasks, planner.catalog, planner.cluster)
    planner.add_run("d", run_id, layout, 0.0)
    return layout


def test_only_queued_stages_are_planned() -> None:
    planner = planner_for()
    layout = _run(planner)
    planner.offer(key("embed"), layout.stages["embed"], 0.0)
    [p] = planner.decide(0.0)
    assert p.key == key("embed")
    planner.finish(key("embed"), 1.0, 1.0)
    # answer's stage-parent is done, but Airflow has not queued it (the CPU tool runs)
    assert planner.decide(1.0) == []
    planner.offer(key("answer"), layout.stages["answer"], 2.0)
    [p] = planner.decide(2.0)
    assert p.key == key("answer")
    assert p.node in {"n0", "n1"} and len(p.gpus) == 1
    assert p.predicted.run > 0


def test_child_with_parents_model_follows_it_to_its_free_gpu() -> None:
    planner = planner_for("fate")
    layout = _run(planner)
    for t in ("embed", "answer"):
        planner.offer(key(t), layout.stages[t], 0.0)
        [p] = planner.decide(0.0)
        planner.finish(key(t), 1.0, 1.0)
        where = p.gpus
    planner.offer(key("judge"), layout.stages["judge"], 2.0)
    [judge] = planner.decide(2.0)
    assert judge.gpus == where
    assert judge.predicted.load == 0.0


def test_offer_is_idempotent_and_a_stage_launches_once() -> None:
    planner = planner_for()
    layout = _run(planner)
    for _ in range(3):
        planner.offer(key("embed"), layout.stages["embed"], 0.0)
    assert len(planner.decide(0.0)) == 1
    planner.offer(key("embed"), layout.stages["embed"], 0.0)
    assert planner.decide(0.5) == []


def test_a_retry_is_planned_as_a_detached_stage() -> None:
    planner = planner_for()
    layout = _run(planner)
    planner.offer(key("embed"), layout.stages["embed"], 0.0)
    [first] = planner.decide(0.0)
    planner.finish(key("embed"), 1.0, 1.0)  # failed; Airflow retries
    planner.offer(key("embed", try_number=2), layout.stages["embed"], 2.0)
    [second] = planner.decide(2.0)
    assert second.key.try_number == 2 and second.uid != first.uid
    assert planner.state.graph.stages[second.uid].stage_id == "embed"


def test_a_stage_whose_parent_never_runs_is_rehomed() -> None:
    planner = planner_for()
    tasks = [node("a", config=meta()), node("b", "a", config=meta())]
    layout = _run(planner, tasks)
    # "a" was skipped by a branch; Airflow still queues "b" (trigger rule none_failed)
    planner.offer(key("b"), layout.stages["b"], 0.0)
    [p] = planner.decide(0.0)
    assert p.key == key("b")
    assert planner.state.graph.stages[p.uid].parents == ()


def test_a_parent_still_running_is_waited_for() -> None:
    planner = planner_for()
    tasks = [node("a", config=meta()), node("b", "a", config=meta())]
    layout = _run(planner, tasks)
    planner.offer(key("a"), layout.stages["a"], 0.0)
    assert len(planner.decide(0.0)) == 1
    planner.offer(key("b"), layout.stages["b"], 0.5)  # queued before we saw a's exit
    assert planner.decide(0.5) == []
    planner.finish(key("a"), 1.0, 1.0)
    [p] = planner.decide(1.0)
    assert p.key == key("b")
    assert planner.state.graph.stages[p.uid].parents != ()


def test_withdrawn_reserved_stage_passes_through_without_launch() -> None:
    planner = planner_for("greedy-eft", nodes=[("n0", "big", 1)])
    tasks = [node("a", config=meta()), node("b", config=meta())]
    layout = _run(planner, tasks)
    planner.offer(key("a"), layout.stages["a"], 0.0)
    [a] = planner.decide(0.0)
    planner.offer(key("b"), layout.stages["b"], 0.1)
    assert planner.decide(0.1) == []  # reserved behind "a" on the only GPU
    planner.withdraw(key("b"))
    planner.finish(key("a"), 1.0, 1.0)
    assert planner.decide(1.0) == []
    assert planner.state.gpu(a.gpus[0]).running is None
    assert planner.pending() == 0


def test_a_task_without_a_known_run_is_planned_detached() -> None:
    planner = planner_for()
    planner.offer(key("x", run_id="unknown"), _md(meta()), 0.0)
    [p] = planner.decide(0.0)
    assert p.key.run_id == "unknown"


def test_restart_restores_residency_replays_finished_and_adopts_running() -> None:
    planner = planner_for("fate")
    layout = _run(planner)
    planner.preload("small-lm", (3,))
    assert planner.replay(key("embed"), (0,), 0.0, 2.0)
    adopted = planner.adopt(key("answer"), layout.stages["answer"], (3,), 0.0)
    assert adopted is not None and adopted.gpus == (3,)
    assert adopted.predicted.load == 0.0  # the preloaded model was resident
    assert planner.adopt(key("other"), layout.stages["answer"], (3,), 0.0) is None  # busy
    planner.offer(key("judge"), layout.stages["judge"], 1.0)
    assert planner.decide(1.0) == []  # its parent (adopted) still runs
    planner.finish(key("answer"), 2.0, 2.0)
    [judge] = planner.decide(2.0)
    assert judge.gpus == (3,)


@pytest.mark.parametrize("policy", [p for p in policy_names() if not p.startswith("fate-no")])
def test_every_policy_runs_a_dag_run_to_completion(policy: str) -> None:
    planner = planner_for(policy)
    layout = _run(planner)
    now = 0.0
    for t in ("embed", "answer", "judge"):
        planner.offer(key(t), layout.stages[t], now)
        placed = []
        for _ in range(20):  # policies may defer; time moves on
            placed = planner.decide(now)
            now += 1.0
            if placed:
                break
        assert [p.key.task_id for p in placed] == [t]
        planner.finish(key(t), now, 1.0)
    assert planner.pending() == 0
