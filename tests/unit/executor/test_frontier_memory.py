"""Finished DAG runs leave the planner: its graph and state stay bounded by live runs.

Runs go through the planner as the executor drives it (add the run, offer each stage
when Airflow would queue it, decide, finish); the sizes of the graph, the state's maps
and the planner's own maps are sampled after every run and must not grow with the
number of finished runs.
"""

from __future__ import annotations

from airflow_fate.executor.frontier import FORGET_AFTER, FrontierPlanner
from airflow_fate.executor.layout import RunLayout, build_layout
from tests.unit.executor.conftest import key, meta, node, planner_for

DAG = [
    node("embed", config=meta("embed", output_tokens=0)),
    node("answer", "embed", config=meta()),
    node("judge", "answer", config=meta("mid-lm")),
]


def sizes(planner: FrontierPlanner) -> dict[str, int]:
    """Everything in the planner that holds one entry per stage, workflow or run."""
    snap = planner.state.snapshot()
    return {
        "graph stages": len(planner.state.graph.stages),
        "graph workflows": len(planner.state.graph.workflows),
        "placements": len(snap.placement),
        "finished": len(snap.finished),
        "arrived": len(snap.arrived),
        "service": len(snap.service),
        "runs": len(planner._runs),
        "stage refs": len(planner._uids),
        "records": len(planner.dispatch.records),
    }


def _run_to_the_end(planner: FrontierPlanner, layout: RunLayout, run: str, t: float) -> float:
    for task_id in layout.stages:
        planner.offer(key(task_id, run), layout.stages[task_id], t)
        [placed] = planner.decide(t)
        t += 1.0
        planner.finish(placed.key, t, 1.0)
    return t


def test_graph_and_state_do_not_grow_with_finished_runs() -> None:
    planner = planner_for("fate")
    layout = build_layout(DAG, planner.catalog, planner.cluster)
    t, peaks = 0.0, []
    for i in range(6 * FORGET_AFTER):
        planner.add_run("d", f"r{i}", layout, t)
        t = _run_to_the_end(planner, layout, f"r{i}", t)
        if (i + 1) % FORGET_AFTER == 0:
            peaks.append(max(sizes(planner).values()))
    # one batch of finished runs (3 stages each) at most, however many ran
    bound = (FORGET_AFTER + 1) * len(layout.stages)
    assert max(peaks) <= bound, peaks
    assert peaks[-1] <= peaks[1], peaks
    assert planner.forgotten >= 5 * FORGET_AFTER


def test_a_run_airflow_closed_is_forgotten_with_its_unrun_stages() -> None:
    """A run whose stage failed never queues the children: Airflow's word ends it."""
    planner = planner_for("greedy-eft")
    layout = build_layout(DAG, planner.catalog, planner.cluster)
    planner.add_run("d", "failed", layout, 0.0)
    planner.offer(key("embed", "failed"), layout.stages["embed"], 0.0)
    [p] = planner.decide(0.0)
    planner.finish(p.key, 1.0, 1.0)  # the try failed; answer and judge will never run
    t = 1.0
    for i in range(FORGET_AFTER):
        planner.add_run("d", f"r{i}", layout, t)
        t = _run_to_the_end(planner, layout, f"r{i}", t)
    assert ("d", "failed") in planner.open_runs()
    assert planner.live_workflows() <= FORGET_AFTER + 1
    planner.close_runs([("d", "failed"), ("d", "never-seen")])
    assert ("d", "failed") not in planner.open_runs()
    planner.add_run("d", "last", layout, t)
    _run_to_the_end(planner, layout, "last", t)
    planner.decide(t + 10)
    assert not planner.has_run("d", "failed")
    assert planner.live_workflows() <= 1


def test_a_live_run_keeps_its_parents_output_across_forgetting() -> None:
    """The child of a stage that finished before the graph was renumbered still follows
    its parent's output to the parent's GPU (the placement moved with the renumbering)."""
    planner = planner_for("fate")
    layout = build_layout(DAG, planner.catalog, planner.cluster)
    planner.add_run("d", "live", layout, 0.0)
    planner.offer(key("embed", "live"), layout.stages["embed"], 0.0)
    planner.offer(key("answer", "live"), layout.stages["answer"], 0.0)
    [embed] = planner.decide(0.0)
    planner.finish(embed.key, 1.0, 1.0)
    [answer] = planner.decide(1.0)
    planner.finish(answer.key, 2.0, 1.0)
    t = 2.0
    for i in range(FORGET_AFTER + 2):
        planner.add_run("d", f"r{i}", layout, t)
        t = _run_to_the_end(planner, layout, f"r{i}", t)
    assert planner.forgotten >= FORGET_AFTER
    planner.offer(key("judge", "live"), layout.stages["judge"], t)
    [judge] = planner.decide(t)
    stage = planner.state.graph.stages[judge.uid]
    assert (stage.workflow_id, stage.stage_id) == ("d/live", "judge")
    [parent] = stage.parents
    assert planner.state.placement_of(parent) == answer.gpus
