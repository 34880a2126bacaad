"""Replays rebuilt from a hand-built placement table: no Airflow, no database.

The table is what ``fate_placement`` and Airflow's task tables would hold for small runs;
the tests check the workload it becomes (stages, parents through CPU tasks and skipped
stages, mapped instances, last tries, Airflow's own seconds), the calibration and
comparison arithmetic, and that a run whose calibration is exact replays to its
measured figures under every policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.graph import WorkloadGraph
from airflow_fate.errors import InputError
from airflow_fate.executor.layout import TaskNode
from airflow_fate.executor.store import PlacementRow
from airflow_fate.launch.types import TaskKey
from airflow_fate.operators.metadata import StageMetadata
from airflow_fate.planner.registry import make_policy, policy_names
from airflow_fate.replay.calibration import calibrate
from airflow_fate.replay.compare import delta, model_error
from airflow_fate.replay.config import ReplayInputs
from airflow_fate.replay.figures import StageOutcome, figures
from airflow_fate.replay.records import QueueKey, RunSource
from airflow_fate.replay.report import Figures, PolicyRow
from airflow_fate.replay.runs import NotReplayableError, past_run
from airflow_fate.replay.whatif import ReplayRequest, what_if
from airflow_fate.replay.workload import build_workload
from airflow_fate.state.cluster_state import ClusterState
from tests.conftest import make_catalog, make_cluster

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
CLUSTER = make_cluster([("n0", "big", 2)])
CATALOG = make_catalog()
LLM = StageMetadata(model="small-lm", input_tokens=1000, output_tokens=100)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def task(task_id: str, up: Sequence[str] = (), meta: StageMetadata | None = LLM) -> TaskNode:
    config = meta.as_executor_config() if meta is not None else None
    return TaskNode(task_id, tuple(up), config)


def row(
    task_id: str,
    launched: float,
    run_s: float,
    *,
    load: float = 0.0,
    prefill: float = 1.0,
    decode: float = 1.0,
    predicted: dict[str, float] | None = None,
    try_number: int = 1,
    map_index: int = -1,
    state: str = "success",
    gpus: tuple[int, ...] = (0,),
    policy: str = "fate",
    run_id: str = "r1",
    dag_id: str = "d",
    **measured: Any,
) -> PlacementRow:
    return PlacementRow(
        key=TaskKey(dag_id, task_id, run_id, try_number, map_index),
        policy=policy if gpus else "cpu-slot",
        node="n0" if gpus else "cpu",
        gpus=gpus,
        model="small-lm" if gpus else "",
        predicted=predicted or {"wait": 0, "load": 0, "input": 0, "prefill": 0.5, "decode": 0.5},
        state=state,
        pid=None,
        start=at(launched),
        end=at(launched + run_s - 0.5),
        run_s=run_s,
        measured={
            "load_s": load,
            "prefill_s": prefill,
            "decode_s": decode,
            "model_warm": load == 0,
            "prefix_warm": False,
            **measured,
        }
        if gpus
        else None,
    )


def source(
    tasks: Sequence[TaskNode],
    rows: Sequence[PlacementRow],
    queued: dict[QueueKey, datetime],
    run_id: str = "r1",
    dag_id: str = "d",
    start: float = 0.0,
) -> RunSource:
    return RunSource(dag_id, run_id, at(start), tuple(tasks), tuple(rows), queued)


def chain_run() -> RunSource:
    """prep (CPU) -> a -> b -> c, and a -> x -> c where x never ran; c ran twice."""
    tasks = [
        task("prep", meta=None),
        task("a", ["prep"]),
        task("b", ["a"]),
        task("x", ["a"]),
        task("c", ["b", "x"]),
    ]
    rows = [
        row("prep", 0.5, 3.0, gpus=()),
        row("a", 5, 12, load=8, predicted={"load": 4, "prefill": 0.5, "decode": 0.5}),
        row("b", 18, 4),
        row("c", 23, 2, try_number=1, state="failed"),
        row("c", 31, 3, try_number=2, prefix_warm=True),
    ]
    queued = {
        ("a", -1, 1): at(4),  # after prep, 4 s after the run started
        ("b", -1, 1): at(16),  # before a's process ended (17): no release delay
        ("c", -1, 2): at(30),
    }
    return source(tasks, rows, queued)


def test_workload_keeps_stages_that_ran_with_parents_through_cpu_and_skipped_tasks() -> None:
    run = past_run(chain_run(), CATALOG, CLUSTER)
    assert [s.stage_id for s in run.stages] == ["a", "b", "c"]
    parents = {s.stage_id: s.parents for s in run.stages}
    assert parents == {"a": (), "b": ("a",), "c": ("b", "a")}, "c reaches a through x"
    assert run.earlier_tries == 1 and run.stages[2].row.key.try_number == 2
    built = build_workload([run])
    [wf] = built.workload.workflows
    assert (wf.id, wf.template, wf.arrival_s) == ("d/r1", "d", 0.0)
    assert [(s.id, s.parents, s.input_tokens) for s in wf.stages] == [
        ("a", [], 1000),
        ("b", ["a"], 1000),
        ("c", ["b", "a"], 1000),
    ]
    times = {k[1]: t for k, t in built.times.items()}
    # a: ready at the run's start, queued at 4, launched at 5; held 12 s for 10 s of work
    assert (times["a"].ready_s, times["a"].release_s, times["a"].wait_s) == (0, 4, 1)
    assert times["a"].overhead_s == pytest.approx(2.0)
    # b: queued (16) before a's process ended (17): ready at 17, launched at 18
    assert (times["b"].ready_s, times["b"].release_s, times["b"].wait_s) == (17, 0, 1)
    # c: ready when b's process ended (22), queued at 30, launched at 31
    assert (times["c"].ready_s, times["c"].release_s, times["c"].wait_s) == (22, 8, 1)
    assert times["c"].overhead_s == pytest.approx(1.0)


def test_mapped_instances_become_stages_and_all_feed_the_child() -> None:
    tasks = [task("m"), task("join", ["m"])]
    rows = [row("m", 1, 2, map_index=0), row("m", 1.5, 2, map_index=1), row("join", 4, 2)]
    run = past_run(source(tasks, rows, {}), CATALOG, CLUSTER)
    assert [(s.stage_id, s.parents) for s in run.stages] == [
        ("m[0]", ()),
        ("m[1]", ()),
        ("join", ("m[0]", "m[1]")),
    ]
    times = build_workload([run]).times
    # no queued times: each stage counts as queued when it launched (no wait)
    assert times[("d/r1", "join")].release_s == pytest.approx(0.5)
    assert times[("d/r1", "join")].wait_s == 0


@pytest.mark.parametrize(
    ("rows", "reason"),
    [
        pytest.param([row("a", 1, 2, state="failed")], "try 1 ended failed", id="failed"),
        pytest.param([row("a", 1, 2, load_s=None)], "reported no measured times", id="unmeasured"),
        pytest.param([row("zzz", 1, 2)], "gives it no stage metadata", id="no-metadata"),
        pytest.param([row("a", 1, 2, gpus=())], "ran no stage on GPUs", id="cpu-only"),
    ],
)
def test_runs_that_cannot_be_replayed_say_which_task_and_why(
    rows: list[PlacementRow], reason: str
) -> None:
    with pytest.raises(NotReplayableError, match=reason):
        past_run(source([task("a")], rows, {}), CATALOG, CLUSTER)


def test_calibration_is_measured_over_predicted_per_model_and_gpu_type() -> None:
    run = past_run(chain_run(), CATALOG, CLUSTER)
    [factor] = calibrate([run], CLUSTER).factors
    assert (factor.model, factor.gpu_type, factor.stages) == ("small-lm", "big", 3)
    assert factor.compute == pytest.approx(6.0 / 3.0)  # 2 s measured per 1 s predicted
    assert factor.load == pytest.approx(8.0 / 4.0)


def outcome(wf: str, arrival: float, end: float, **kw: Any) -> StageOutcome:
    fields = {"wait_s": 0.0, "load_s": 0.0, "prefix_reused": False, **kw}
    return StageOutcome(workflow=wf, arrival_s=arrival, end_s=end, **fields)


def test_figures_and_deltas() -> None:
    got = figures(
        [
            outcome("w1", 0, 10, wait_s=1, load_s=4),
            outcome("w1", 0, 30, wait_s=2, prefix_reused=True),
            outcome("w2", 10, 20, wait_s=3, load_s=5),
        ]
    )
    # latencies 30 and 10; P95 interpolates: 10 + 0.95 * 20
    assert got == Figures(
        makespan_s=30,
        mean_latency_s=20,
        p95_latency_s=29,
        stages=3,
        loads=2,
        load_s=9,
        wait_s=6,
        prefix_hits=1,
    )
    base = got.model_copy(update={"makespan_s": 40.0, "loads": 3, "prefix_hits": 2})
    d = delta(got, base)
    assert (d.makespan_s, d.makespan_pct, d.loads, d.prefix_hits) == (-10, -25.0, -1, -1)
    rows = [PolicyRow(policy="fate", ran=True, figures=got), PolicyRow(policy="rr", ran=False)]
    error = model_error(rows, base, ["fate"])
    assert error is not None and (error.policy, error.makespan_pct) == ("fate", -25.0)
    assert model_error(rows, base, ["fate", "rr"]) is None, "two policies ran: no single error"


class FakeReader:
    """What `RunReader` would read from a database holding ``sources``."""

    def __init__(self, sources: Sequence[RunSource]) -> None:
        self.sources = {(s.dag_id, s.run_id): s for s in sources}

    def run_ids(self, dag_id: str, since: datetime | None = None) -> list[str]:
        return [
            r
            for (d, r), s in self.sources.items()
            if d == dag_id and (since is None or (s.start is not None and s.start >= since))
        ]

    def has_run(self, dag_id: str, run_id: str) -> bool:
        return (dag_id, run_id) in self.sources

    def sharing(self, since: datetime, until: datetime) -> list[tuple[str, str]]:
        return [
            k
            for k, s in self.sources.items()
            if any(r.gpus and r.start < until and (r.end is None or r.end > since) for r in s.rows)
        ]

    def source(self, dag_id: str, run_id: str) -> RunSource:
        return self.sources[(dag_id, run_id)]


ONE_GPU = make_cluster([("n0", "big", 1)])
INPUTS = ReplayInputs(ONE_GPU, CATALOG, make_policy)


def exact_run(dag_id: str = "d", run_id: str = "r1", start: float = 0.0) -> RunSource:
    """a (cold) -> b (warm), each measured at exactly twice the cost model's prediction."""
    tasks = [task("a"), task("b", ["a"])]
    probe = past_run(
        source(tasks, [row("a", 1, 9), row("b", 9, 9)], {}, run_id, dag_id, start),
        CATALOG,
        ONE_GPU,
    )
    graph = WorkloadGraph.from_workload(build_workload([probe]).workload, CATALOG)
    cost = CostModel(ONE_GPU, CATALOG)
    cold = cost.run_cost(graph.stages[0], (0,), ClusterState(ONE_GPU, CATALOG, graph).snapshot())
    warm_compute = cold.prefill + cold.decode
    assert cold.load > 0
    a_run = 2 * cold.run + 3.0  # twice the prediction plus 3 s of task process
    b_launch = start + 1 + a_run + 2.0  # queued 2 s after a's process ended
    rows = [
        row(
            "a",
            start + 1,
            a_run,
            load=2 * cold.load,
            prefill=2 * cold.prefill,
            decode=2 * cold.decode,
            predicted=cold.as_dict(),
            dag_id=dag_id,
            run_id=run_id,
        ),
        row(
            "b",
            b_launch,
            2 * warm_compute + 3.0,
            prefill=2 * cold.prefill,
            decode=2 * cold.decode,
            predicted={**cold.as_dict(), "load": 0.0},
            dag_id=dag_id,
            run_id=run_id,
        ),
    ]
    queued = {("a", -1, 1): at(start + 1), ("b", -1, 1): at(b_launch)}
    return source(tasks, rows, queued, run_id, dag_id, start)


def test_an_exactly_calibrated_run_replays_to_its_measured_figures_under_every_policy() -> None:
    report = what_if(FakeReader([exact_run()]), ReplayRequest(("d",), "r1"), INPUTS)
    assert [r.policy for r in report.rows] == policy_names()
    assert report.ran == ["fate"] and [r.policy for r in report.rows if r.ran] == ["fate"]
    m = report.measured
    assert (m.stages, m.loads, m.wait_s) == (2, 1, 0)
    for r in report.rows:  # one GPU, one chain: every policy does what was done
        assert r.figures is not None and r.delta is not None, r.error
        assert r.figures.makespan_s == pytest.approx(m.makespan_s, abs=2e-3), r.policy
        assert r.delta.loads == 0 and r.delta.wait_s == pytest.approx(0, abs=2e-3)
    assert report.model_error is not None and report.model_error.makespan_pct == 0
    [factor] = report.calibration
    assert (factor.compute, factor.load) == (2.0, 2.0)
    # Airflow's own time: 3 + 3 s of task processes, 1 s before a was queued, 2 s before b
    assert report.airflow_s == pytest.approx(6.0 + 1.0 + 2.0, abs=1e-3)


def test_runs_sharing_the_gpus_are_replayed_but_not_counted() -> None:
    mine, theirs = exact_run(), exact_run("other", "r9", start=0.5)
    seen = {"d"}
    report = what_if(
        FakeReader([mine, theirs]),
        ReplayRequest(("d",), "r1", policies=("round-robin",)),
        INPUTS,
        visible=seen.__contains__,
    )
    assert [(r.dag_id, r.run_id, r.chosen) for r in report.runs] == [
        ("d", "r1", True),
        (None, None, False),
    ], "the other DAG is replayed, unnamed"
    assert [r.policy for r in report.rows] == ["round-robin", "fate"], "the ran policy joins"
    assert report.measured.stages == 2
    rr = report.rows[0].figures
    assert rr is not None and rr.stages == 2
    assert rr.wait_s > 0, "one GPU for both runs: someone waits in the replay"


def test_errors_name_the_option() -> None:
    reader = FakeReader([exact_run()])
    with pytest.raises(InputError, match="--run-id: DAG 'd' has no run 'nope'"):
        what_if(reader, ReplayRequest(("d",), "nope"), INPUTS)
    with pytest.raises(InputError, match="--dag-id: no replayable run of d since"):
        what_if(reader, ReplayRequest(("d",), since=at(3600)), INPUTS)
