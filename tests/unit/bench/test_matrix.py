"""The win/loss matrix: paired ratios, verdicts, and ``bench`` over loads and launchers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_fate.bench.matrix import MIN_SEEDS, cell_standings, verdict
from airflow_fate.bench.runner import Job, JobResult
from airflow_fate.cli import main


def _result(policy: str, seed: int, makespan: float, p95: float = 1.0) -> JobResult:
    return JobResult(
        job=Job(policy, seed),
        makespan_s=makespan,
        p95_latency_s=p95,
        mean_latency_s=p95 / 2,
        lower_bound_s=1.0,
        planner_p99_ms=0.0,
        decisions=1,
        fallbacks=0,
        wall_s=0.0,
    )


@pytest.mark.parametrize(
    ("ratio", "ci95", "seeds", "expected"),
    [
        pytest.param(0.8, 0.05, 5, "win", id="interval-below-one"),
        pytest.param(1.2, 0.05, 5, "loss", id="interval-above-one"),
        pytest.param(0.97, 0.05, 5, "tie", id="interval-contains-one"),
        pytest.param(0.5, 0.01, MIN_SEEDS - 1, "too few seeds", id="too-few-seeds"),
        pytest.param(0.5, None, 5, "too few seeds", id="no-interval"),
    ],
)
def test_verdict(ratio: float, ci95: float | None, seeds: int, expected: str) -> None:
    assert verdict(ratio, ci95, seeds) == expected


def test_standing_is_paired_per_seed_against_the_best_other_by_mean() -> None:
    """Seeds differ tenfold, policies by 10%: the paired ratio sees the 10% on every
    seed (a win) where unpaired means would not; the best other is the lowest mean."""
    runs = []
    for seed, scale in enumerate((1.0, 10.0, 3.0)):
        runs += [
            _result("round-robin", seed, 2.0 * scale),
            _result("greedy-eft", seed, 1.0 * scale),
            _result("fate-greedy", seed, 0.1 * scale),  # an ablation is not "other"
            _result("fate", seed, 0.9 * scale, p95=1.0),
        ]
    cell = cell_standings(runs, 0.7, "local", seeds=[0, 1, 2])
    makespan = cell.standings["makespan_s"]
    assert makespan.best_other == "greedy-eft"
    assert makespan.ratio == pytest.approx(0.9)
    assert makespan.ci95 == pytest.approx(0.0)
    assert makespan.verdict == "win"
    assert cell.standings["p95_latency_s"].verdict == "tie", "equal P95 on every seed"


def test_standing_needs_fate_and_another_policy() -> None:
    with pytest.raises(ValueError, match="needs fate"):
        cell_standings([_result("fate", 0, 1.0)], 0.7, "local", seeds=[0])


def test_bench_over_loads_and_launchers_writes_a_matrix(tmp_path: Path) -> None:
    out = tmp_path / "matrix"
    argv = ["bench", "--suite", "real-dag", "--seeds", "2", "--seeds-from", "7"]
    argv += ["--workflows", "4", "--policies", "greedy-eft,fate", "--out", str(out)]
    argv += ["--load", "0.5,0.9", "--launcher", "worker-pods,local"]
    assert main(argv) == 0
    data = json.loads((out / "matrix.json").read_text())
    assert data["seeds"] == [7, 8]
    cells = [(c["launcher"], c["load"]) for c in data["cells"]]
    assert cells == [("local", 0.5), ("local", 0.9), ("worker-pods", 0.5), ("worker-pods", 0.9)]
    for c in data["cells"]:
        assert set(c["standings"]) == {"makespan_s", "p95_latency_s", "mean_latency_s"}
        assert {s["verdict"] for s in c["standings"].values()} == {"too few seeds"}
        cell_dir = out / f"{c['launcher']}-load-{c['load']:g}"
        results = json.loads((cell_dir / "results.json").read_text())
        assert (results["launcher"], results["load"], results["seeds"]) == (
            c["launcher"],
            c["load"],
            [7, 8],
        )
        text = (cell_dir / "results.md").read_text()
        assert "Too small to conclude anything" in text
        assert f"--seeds-from 7 --load {c['load']:g}" in text
    matrix_md = (out / "matrix.md").read_text()
    assert "--load 0.5,0.9" in matrix_md and "--launcher local,worker-pods" in matrix_md
    assert "Tally over 4 cells x 3 metrics: 12 too few seeds." in matrix_md


def test_bench_over_loads_without_fate_writes_each_cell_and_says_why_no_matrix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Comparing ablations over loads is a fair use: the cells run, only the matrix
    (FATE against the rest) is left out, and the run says so before it starts."""
    out = tmp_path / "ablations"
    argv = ["bench", "--suite", "real-dag", "--seeds", "1", "--workflows", "3"]
    argv += ["--policies", "fate-greedy", "--out", str(out), "--load", "0.5,0.9"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.index("no win/loss matrix") < printed.index("wrote")
    assert "--policies has no fate" in printed
    for load in ("0.5", "0.9"):
        results = json.loads((out / f"local-load-{load}" / "results.json").read_text())
        assert set(results["policies"]) == {"round-robin", "fate-greedy"}
    assert not (out / "matrix.json").exists()
    assert not (out / "matrix.md").exists()


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        pytest.param("--load", "0.5,-1", "--load: must be a number > 0, got -1", id="load"),
        pytest.param("--seeds-from", "-3", "--seeds-from: must be >= 0, got -3", id="seeds"),
    ],
)
def test_bench_rejects_bad_values_naming_the_flag(
    flag: str, value: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["bench", "--suite", "real-dag", "--out", str(tmp_path), flag, value]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_bench_rejects_an_unknown_launcher(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "--suite", "real-dag", "--launcher", "local,slurm"])
    assert "expected a comma list of local, worker-pods, pod-per-stage" in capsys.readouterr().err
