"""`ExecutorStats`: planner decisions, placements and device reports to Airflow metrics.

Placements come from a real `FrontierPlanner` (one GPU, so each case's warm or cold is
the cost model's, not a hand-made flag); a recording sink stands in for Airflow's
``stats`` module. The ``metrics.json`` summary must add up to what the sink received.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta

import pytest

from airflow_fate.executor import stats as st
from airflow_fate.executor.frontier import FrontierPlanner, Placement
from airflow_fate.executor.layout import build_layout
from airflow_fate.executor.stats import ExecutorStats
from airflow_fate.operators.stage import failure_report
from airflow_fate.runtime.errors import StageError
from airflow_fate.spine.dispatch import PlannerLog
from tests.unit.executor.conftest import key, meta, node, planner_for

TAGS = {"policy": "fate"}
PREFIX = {"id": "writer", "tokens": 200}


@dataclass
class RecordingSink:
    """Every call, in order: ``(kind, name, value, tags)``."""

    calls: list[tuple[str, str, float, dict[str, str]]] = field(default_factory=list)

    def incr(self, stat: str, count: int, *, tags: dict[str, str]) -> None:
        self.calls.append(("incr", stat, count, tags))

    def gauge(self, stat: str, value: float, *, tags: dict[str, str]) -> None:
        self.calls.append(("gauge", stat, value, tags))

    def timing(self, stat: str, dt: timedelta, *, tags: dict[str, str]) -> None:
        self.calls.append(("timing", stat, dt.total_seconds(), tags))

    def total(self, stat: str) -> float:
        return sum(v for _, name, v, _ in self.calls if name == stat)

    def names(self) -> set[str]:
        return {name for _, name, _, _ in self.calls}


def one_gpu_planner() -> FrontierPlanner:
    return planner_for("fate", nodes=[("n0", "big", 1)])


def run_chain(planner: FrontierPlanner, *task_ids: str) -> list[Placement]:
    """Offer, place and finish each task of the run in turn; their placements."""
    layout = build_layout(
        [
            node("draft", config=meta(input_tokens=1000, prefix=PREFIX)),
            node("revise", "draft", config=meta(input_tokens=1000, prefix=PREFIX)),
            node("embed", "revise", config=meta("embed", output_tokens=0)),
        ],
        planner.catalog,
        planner.cluster,
    )
    planner.add_run("d", "r1", layout, 0.0)
    out: list[Placement] = []
    for i, task_id in enumerate(task_ids):
        planner.offer(key(task_id), layout.stages[task_id], float(i))
        [p] = planner.decide(float(i))
        out.append(p)
        planner.finish(key(task_id), i + 0.5, 0.5)
    return out


def test_placements_are_warm_or_cold_as_the_planner_saw_them() -> None:
    draft, revise, embed = run_chain(one_gpu_planner(), "draft", "revise", "embed")
    assert draft.predicted.load > 0 and draft.reused_prefix_tokens == 0
    assert revise.predicted.load == 0 and revise.reused_prefix_tokens == PREFIX["tokens"]
    assert embed.predicted.load > 0
    sink = RecordingSink()
    stats = ExecutorStats(sink, "fate")
    for p in (draft, revise, embed):
        stats.placed(p)
    assert sink.calls == [
        ("incr", st.PLACEMENTS_COLD, 1, TAGS),
        ("incr", st.PLACEMENTS_WARM, 1, TAGS),
        ("incr", st.PLACEMENTS_PREFIX_REUSE, 1, TAGS),
        ("incr", st.PLACEMENTS_COLD, 1, TAGS),
    ]
    assert (stats.placements_cold, stats.placements_warm, stats.placements_prefix_reuse) == (
        2,
        1,
        1,
    )


def test_decisions_are_read_once_from_the_planner_log() -> None:
    sink = RecordingSink()
    stats = ExecutorStats(sink, "fate")
    planner_log = PlannerLog(plan_ms=[2.0, 30.0], fallbacks=1)
    stats.decided(planner_log)
    stats.decided(planner_log)  # nothing new: nothing sent again
    planner_log.plan_ms.append(4.0)
    planner_log.fallbacks = 3
    stats.decided(planner_log)
    assert sink.calls == [
        ("timing", st.DECISION_TIME, 0.002, TAGS),
        ("timing", st.DECISION_TIME, 0.030, TAGS),
        ("incr", st.SOLVER_FALLBACKS, 1, TAGS),
        ("timing", st.DECISION_TIME, 0.004, TAGS),
        ("incr", st.SOLVER_FALLBACKS, 2, TAGS),
    ]


def test_a_solver_timeout_in_a_real_decision_is_a_fallback() -> None:
    """CP-SAT with a microsecond limit gives up; greedy places and the log says so."""
    planner = one_gpu_planner()
    policy = planner.dispatch.policy
    policy.config = replace(policy.config, time_limit_s=1e-6)
    run_chain(planner, "draft")
    sink = RecordingSink()
    stats = ExecutorStats(sink, "fate")
    stats.decided(planner.dispatch.log)
    assert sink.total(st.SOLVER_FALLBACKS) == 1
    assert [c[1] for c in sink.calls].count(st.DECISION_TIME) == 1


@pytest.mark.parametrize(
    ("measured", "loads", "load_s", "evictions"),
    [
        pytest.param({"model_warm": False, "load_s": 16.5, "evicted": []}, 1, 16.5, 0, id="cold"),
        pytest.param({"model_warm": True, "load_s": 0.0, "evicted": []}, 0, 0.0, 0, id="warm"),
        pytest.param(
            {"model_warm": False, "load_s": 2.0, "evicted": ["smollm2", "other"]},
            1,
            2.0,
            2,
            id="load-evicting-two",
        ),
        pytest.param(None, 0, 0.0, 0, id="cpu-task"),
        pytest.param({"model_warm": "yes", "load_s": 1.0}, 0, 0.0, 0, id="malformed"),
        pytest.param(
            failure_report(StageError("out-of-memory", "out of memory"), 1), 0, 0.0, 0, id="failed"
        ),
    ],
)
def test_device_reports_count_loads_and_evictions(
    measured: dict[str, object] | None, loads: int, load_s: float, evictions: int
) -> None:
    sink = RecordingSink()
    stats = ExecutorStats(sink, "fate")
    stats.ended(measured)
    assert (stats.model_loads, stats.load_s, stats.evictions) == (loads, load_s, evictions)
    assert sink.total(st.MODEL_LOADS) == loads
    assert sink.total(st.MODEL_LOAD_TIME) == pytest.approx(load_s)
    assert sink.total(st.EVICTIONS) == evictions
    if loads:  # a load's time is sent even when it took no measurable time
        assert st.MODEL_LOAD_TIME in sink.names()


def test_occupancy_gauges_follow_the_planner() -> None:
    planner = one_gpu_planner()
    layout = build_layout(
        [node("a", config=meta()), node("b", config=meta())], planner.catalog, planner.cluster
    )
    planner.add_run("d", "r1", layout, 0.0)
    for t in ("a", "b"):
        planner.offer(key(t), layout.stages[t], 0.0)
    [first] = planner.decide(0.0)
    sink = RecordingSink()
    stats = ExecutorStats(sink, "fate")
    stats.occupancy(planner.pending(), planner.busy_gpus())
    planner.finish(first.key, 1.0, 1.0)
    stats.occupancy(planner.pending(), planner.busy_gpus())
    assert sink.calls == [
        ("gauge", st.QUEUED_STAGES, 1, TAGS),
        ("gauge", st.GPUS_BUSY, 1, TAGS),
        ("gauge", st.QUEUED_STAGES, 1, TAGS),  # b still waits: not decided since
        ("gauge", st.GPUS_BUSY, 0, TAGS),
    ]


def test_the_summary_adds_up_to_what_the_sink_received() -> None:
    """One source of numbers: ``metrics.json`` and the metrics come from the same counts."""
    planner = one_gpu_planner()
    sink = RecordingSink()
    stats = ExecutorStats(sink, "round-robin")
    for p in run_chain(planner, "draft", "revise", "embed"):
        stats.placed(p)
    stats.decided(planner.dispatch.log)
    stats.ended({"model_warm": False, "load_s": 3.25, "evicted": []})
    stats.ended({"model_warm": False, "load_s": 0.5, "evicted": ["small-lm"]})
    doc = stats.summary(tasks_launched=4, overhead_s=0.02)
    assert doc["placements_cold"] == sink.total(st.PLACEMENTS_COLD) == 2
    assert doc["placements_warm"] == sink.total(st.PLACEMENTS_WARM) == 1
    assert doc["placements_prefix_reuse"] == sink.total(st.PLACEMENTS_PREFIX_REUSE) == 1
    assert doc["model_loads"] == sink.total(st.MODEL_LOADS) == 2
    assert doc["load_s"] == pytest.approx(sink.total(st.MODEL_LOAD_TIME)) == 3.75
    assert doc["evictions"] == sink.total(st.EVICTIONS) == 1
    assert doc["plan_calls"] == len(planner.dispatch.log.plan_ms) == 3
    assert doc["plan_ms_total"] == pytest.approx(sink.total(st.DECISION_TIME) * 1000, abs=0.01)
    assert doc["fallbacks"] == sink.total(st.SOLVER_FALLBACKS)
    assert doc["tasks_launched"] == 4 and doc["overhead_ms_per_task"] == 5.0
    assert {tags["policy"] for *_, tags in sink.calls} == {"round-robin"}


def test_every_name_is_under_one_prefix_and_listed() -> None:
    assert all(n.startswith("fate.") for n in st.METRIC_NAMES)
    assert len(set(st.METRIC_NAMES)) == len(st.METRIC_NAMES) == 10


def test_airflow_metrics_reach_opentelemetry_with_the_policy_attribute() -> None:
    """Through Airflow's own stats module to its OpenTelemetry logger (``otel_on``)."""
    from airflow._shared.observability.metrics.base_stats_logger import NoStatsLogger
    from airflow._shared.observability.metrics.otel_logger import SafeOtelLogger
    from airflow.observability import stats as airflow_stats
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    otel = SafeOtelLogger(MeterProvider(metric_readers=[reader]), prefix="airflow")
    airflow_stats.initialize(factory=lambda: otel, export_legacy_names=False)
    try:
        stats = ExecutorStats(st.AirflowMetrics(), "fate")
        stats.decided(PlannerLog(plan_ms=[12.0], fallbacks=1))
        stats.ended({"model_warm": False, "load_s": 2.5, "evicted": ["x"]})
        stats.occupancy(3, 1)
        data = reader.get_metrics_data()
    finally:
        airflow_stats.initialize(factory=NoStatsLogger, export_legacy_names=True)
    assert data is not None
    points = {
        m.name: list(m.data.data_points)
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    for name in (
        st.DECISION_TIME,
        st.SOLVER_FALLBACKS,
        st.MODEL_LOADS,
        st.MODEL_LOAD_TIME,
        st.EVICTIONS,
        st.QUEUED_STAGES,
        st.GPUS_BUSY,
    ):
        [point] = points[f"airflow.{name}"]
        assert dict(point.attributes or {}) == TAGS, name
    assert points[f"airflow.{st.QUEUED_STAGES}"][0].value == 3
    assert points[f"airflow.{st.MODEL_LOAD_TIME}"][0].sum == pytest.approx(2500.0)
