"""Normalisation by RoundRobin per seed, t intervals, and the summary over seeds and points."""

from __future__ import annotations

import math

import pytest

from airflow_fate.bench.results import summarise_runs
from airflow_fate.bench.runner import Job, JobResult, Point
from airflow_fate.bench.stats import mean_ci, normalise, t_critical


def _run(policy: str, seed: int, makespan: float, *, point: Point | None = None) -> JobResult:
    return JobResult(
        job=Job(policy=policy, seed=seed, point=point),
        makespan_s=makespan,
        p95_latency_s=makespan / 2,
        mean_latency_s=makespan / 4,
        lower_bound_s=40.0,
        planner_p99_ms=float(seed + 1),
        decisions=10,
        fallbacks=0,
        wall_s=0.1,
    )


@pytest.mark.parametrize(
    ("df", "expected"),
    [
        pytest.param(1, 12.7062, id="df1"),
        pytest.param(4, 2.7764, id="df4"),
        pytest.param(30, 2.0423, id="df30"),
        pytest.param(35, 2.0423, id="between-tabulated-uses-smaller-df"),
        pytest.param(1000, 1.96, id="large-df-normal"),
    ],
)
def test_t_critical_values(df: int, expected: float) -> None:
    assert t_critical(df) == pytest.approx(expected)


def test_t_table_agrees_with_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    for df in [*range(1, 31), 40, 60, 120]:
        assert t_critical(df) == pytest.approx(stats.t.ppf(0.975, df), abs=1e-4), df


def test_t_critical_rejects_zero_df() -> None:
    with pytest.raises(ValueError, match="degrees of freedom"):
        t_critical(0)


def test_mean_ci_against_hand_computation() -> None:
    # mean 0.6, sample std 0.1, n 3: half-width = t(2) * 0.1 / sqrt(3) = 4.3027 * 0.057735
    est = mean_ci([0.5, 0.6, 0.7])
    assert est.mean == pytest.approx(0.6)
    assert est.ci95 == pytest.approx(4.3027 * 0.1 / math.sqrt(3))
    assert est.ci95 == pytest.approx(0.248416, abs=1e-6)


def test_one_sample_has_no_interval_and_none_is_an_error() -> None:
    assert mean_ci([0.7]).ci95 is None
    assert mean_ci([0.7]).mean == 0.7
    with pytest.raises(ValueError, match="at least one sample"):
        mean_ci([])


def test_normalise_divides_by_the_reference_on_the_same_seed() -> None:
    values = {"round-robin": {0: 100.0, 1: 200.0}, "fate": {0: 50.0, 1: 150.0}}
    out = normalise(values, "round-robin")
    assert out == {"round-robin": {0: 1.0, 1: 1.0}, "fate": {0: 0.5, 1: 0.75}}


@pytest.mark.parametrize(
    "values",
    [
        pytest.param({"fate": {0: 1.0}}, id="no-reference"),
        pytest.param({"round-robin": {1: 1.0}, "fate": {0: 1.0}}, id="seed-missing"),
        pytest.param({"round-robin": {0: 0.0}, "fate": {0: 1.0}}, id="zero-reference"),
    ],
)
def test_normalise_needs_a_positive_reference_on_every_seed(
    values: dict[str, dict[int, float]],
) -> None:
    with pytest.raises(ValueError, match="round-robin"):
        normalise(values, "round-robin")


def test_summary_normalises_per_seed_then_averages_seeds() -> None:
    runs = [
        _run("round-robin", 0, 100.0),
        _run("fate", 0, 50.0),
        _run("round-robin", 1, 200.0),
        _run("fate", 1, 160.0),
    ]
    res = summarise_runs(runs, suite="real-dag", seeds=[0, 1], workflows=4, load=0.7, noise=0.0)
    fate = res.policies["fate"]
    # per-seed ratios 0.5 and 0.8: mean 0.65, t(1) * std / sqrt(2) = 12.7062 * 0.15
    assert fate.normalized_makespan.mean == pytest.approx(0.65)
    assert fate.normalized_makespan.ci95 == pytest.approx(12.7062 * 0.15, abs=1e-5)
    assert fate.normalized_p95.mean == pytest.approx(0.65)
    assert fate.makespan_s.mean == pytest.approx(105.0)
    assert fate.makespan_over_lower_bound.mean == pytest.approx((50 / 40 + 160 / 40) / 2)
    assert fate.planner_p99_ms == 2.0, "the worst run's p99"
    assert res.policies["round-robin"].normalized_makespan.mean == 1.0
    assert res.points is None


def test_sweep_averages_each_seeds_points_before_the_seeds() -> None:
    a, b = Point(0.0, 4), Point(0.5, 4)
    runs = [_run("round-robin", s, 100.0, point=p) for s in (0, 1) for p in (a, b)] + [
        _run("fate", 0, 50.0, point=a),
        _run("fate", 0, 70.0, point=b),
        _run("fate", 1, 80.0, point=a),
        _run("fate", 1, 60.0, point=b),
    ]
    res = summarise_runs(runs, suite="prefix-reuse", seeds=[0, 1], workflows=4, load=0.7, noise=0.0)
    top = res.policies["fate"].normalized_makespan
    # seed means 0.6 and 0.7 (not four pooled samples): CI over two seeds
    assert top.mean == pytest.approx(0.65)
    assert top.ci95 == pytest.approx(12.7062 * 0.05, abs=1e-5)
    assert res.points is not None
    assert [p.prefix_fraction for p in res.points] == [0.0, 0.5]
    assert res.points[0].policies["fate"].normalized_makespan.mean == pytest.approx(0.65)
    assert res.points[1].policies["fate"].normalized_makespan.mean == pytest.approx(0.65)
    assert res.points[0].policies["fate"].normalized_makespan.ci95 == pytest.approx(
        12.7062 * 0.15, abs=1e-5
    )


def test_one_seed_gives_null_intervals() -> None:
    runs = [_run("round-robin", 0, 100.0), _run("fate", 0, 60.0)]
    res = summarise_runs(runs, suite="real-dag", seeds=[0], workflows=4, load=0.7, noise=0.0)
    assert res.policies["fate"].normalized_makespan.ci95 is None
    assert '"ci95":null' in res.model_dump_json()
