"""``results.json`` and ``results.md`` from a small hand-made results object."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_fate.bench.report import (
    ablation_table,
    best_baseline,
    main_table,
    render_markdown,
    write_json,
)
from airflow_fate.bench.results import BenchResults, MeanCI, PointResults, PolicySummary


def _summary(
    makespan: float, p95: float, ci: float | None = 0.01, fallbacks: int = 0
) -> PolicySummary:
    return PolicySummary(
        normalized_makespan=MeanCI(mean=makespan, ci95=ci),
        normalized_p95=MeanCI(mean=p95, ci95=ci),
        makespan_s=MeanCI(mean=makespan * 300, ci95=ci),
        p95_latency_s=MeanCI(mean=p95 * 250, ci95=ci),
        makespan_over_lower_bound=MeanCI(mean=makespan * 3, ci95=ci),
        planner_p99_ms=12.5,
        planner_decisions=100,
        planner_fallbacks=fallbacks,
    )


# model-affinity is the best baseline on makespan, greedy-eft on P95.
POLICIES = {
    "round-robin": _summary(1.0, 1.0, ci=0.0),
    "greedy-eft": _summary(0.8, 0.7),
    "model-affinity": _summary(0.7, 0.75),
    "fate": _summary(0.56, 0.63),
    "fate-no-prefix": _summary(0.6, 0.693),
}


def _results(points: list[PointResults] | None = None) -> BenchResults:
    return BenchResults(
        suite="real-dag",
        seeds=[0, 1, 2],
        workflows=10,
        load=0.7,
        noise=0.15,
        policies=POLICIES,
        points=points,
    )


def _row(lines: list[str], name: str) -> list[str]:
    (row,) = [line for line in lines if line.startswith(f"| {name} |")]
    return [cell.strip() for cell in row.strip("|").split("|")]


def test_best_baseline_is_chosen_per_metric_among_non_fate_policies() -> None:
    assert best_baseline(POLICIES, "normalized_makespan") == "model-affinity"
    assert best_baseline(POLICIES, "normalized_p95") == "greedy-eft"
    assert best_baseline({"fate": POLICIES["fate"]}, "normalized_p95") is None


def test_main_table_numbers() -> None:
    lines = main_table(POLICIES)
    fate = _row(lines, "**fate**")
    assert fate[1] == "0.560 ± 0.010"
    assert fate[2] == "0.630 ± 0.010"
    assert fate[3] == "44.0% / 37.0%"  # 1 - normalised
    assert fate[4] == "20.0% / 10.0%"  # vs model-affinity 0.70 and greedy-eft 0.70
    assert fate[5] == "1.68 ± 0.01"
    assert fate[6] == "12.5"
    assert _row(lines, "model-affinity")[4] == "0.0% / -7.1%"
    assert _row(lines, "round-robin")[3] == "0.0% / 0.0%"
    assert not any(line.startswith("| fate-no-prefix") for line in lines)
    assert lines[-1] == "Best baseline per metric: makespan: model-affinity; P95: greedy-eft."


def test_ablation_table_relative_to_fate() -> None:
    lines = ablation_table(POLICIES)
    assert _row(lines, "fate")[3] == "+0.0% / +0.0%"
    assert _row(lines, "fate-no-prefix")[3] == "+7.1% / +10.0%"
    assert not any(line.startswith("| greedy-eft") for line in lines)


def test_markdown_has_both_tables_and_the_command() -> None:
    text = render_markdown(_results(), command="airflow-fate bench --suite real-dag")
    assert "## Main results" in text and "## Ablations" in text
    assert "airflow-fate bench --suite real-dag" in text
    assert "3 seeds (0, 1, 2)" in text
    assert "Prefix-reuse sweep" not in text


def test_fallbacks_are_flagged_only_when_there_were_some() -> None:
    assert "fell back" not in render_markdown(_results())
    policies = dict(POLICIES, fate=_summary(0.56, 0.63, fallbacks=3))
    text = render_markdown(_results().model_copy(update={"policies": policies}))
    assert "fell back to a greedy answer at the solver's time limit: fate 3 of 100." in text


def test_sweep_tables_pick_the_best_baseline_per_point() -> None:
    low = PointResults(prefix_fraction=0.0, prefixes=4, policies=POLICIES)
    swapped = dict(POLICIES, **{"greedy-eft": _summary(0.5, 0.7)})
    high = PointResults(prefix_fraction=0.9, prefixes=4, policies=swapped)
    text = render_markdown(_results([low, high]))
    lines = text.splitlines()
    start = lines.index("### Normalised makespan")
    gains = next(line for line in lines[start:] if line.startswith("| *fate gain"))
    assert "20.0% (model-affinity)" in gains  # 1 - 0.56 / 0.70 at F = 0
    assert "-12.0% (greedy-eft)" in gains  # 1 - 0.56 / 0.50 at F = 0.9
    assert "| Policy | F = 0 | F = 0.9 |" in text


def test_json_keeps_null_intervals_and_drops_absent_points(tmp_path: Path) -> None:
    policies = dict(POLICIES, fate=_summary(0.56, 0.63, ci=None))
    out = tmp_path / "r" / "results.json"
    write_json(_results().model_copy(update={"policies": policies}), out)
    data = json.loads(out.read_text())
    assert "points" not in data
    assert data["policies"]["fate"]["normalized_makespan"] == {"mean": 0.56, "ci95": None}
    assert set(data) >= {"suite", "seeds", "workflows", "policies"}


@pytest.mark.parametrize("with_points", [False, True])
def test_json_round_trips(tmp_path: Path, with_points: bool) -> None:
    points = [PointResults(prefix_fraction=0.5, prefixes=4, policies=POLICIES)]
    res = _results(points if with_points else None)
    write_json(res, tmp_path / "results.json")
    assert BenchResults.model_validate_json((tmp_path / "results.json").read_text()) == res
