"""``airflow-fate bench`` end to end on a tiny setting: files, schema, determinism, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_fate.cli import main

PNG = b"\x89PNG\r\n\x1a\n"
ESTIMATES = (
    "normalized_makespan",
    "normalized_p95",
    "makespan_s",
    "p95_latency_s",
    "mean_latency_s",
    "makespan_over_lower_bound",
)
COUNTS = ("model_loads", "evictions", "pod_starts")
TIMINGS = ("planner_p99_ms", "planner_fallbacks")


def _bench(out: Path, *extra: str, policies: str = "greedy-eft,fate") -> int:
    tiny = ["--seeds", "2", "--workflows", "4", "--policies", policies]
    return main(["bench", "--suite", "real-dag", *tiny, "--out", str(out), *extra])


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "real-dag"
    assert _bench(out, "--jobs", "2") == 0
    return out


def _without_timings(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k not in TIMINGS}


def test_writes_results_tables_and_plots(two_workers: Path) -> None:
    names = sorted(p.name for p in two_workers.iterdir())
    assert names == ["gantt.png", "normalized.png", "results.json", "results.md"]
    for png in ("gantt.png", "normalized.png"):
        data = (two_workers / png).read_bytes()
        assert data.startswith(PNG) and len(data) > 1000


def test_results_json_schema(two_workers: Path) -> None:
    data = json.loads((two_workers / "results.json").read_text())
    assert data["suite"] == "real-dag"
    assert data["seeds"] == [0, 1]
    assert data["workflows"] == 4
    assert data["launcher"] == "local"
    assert "points" not in data
    assert list(data["policies"]) == ["round-robin", "greedy-eft", "fate"], "reference added"
    for summary in data["policies"].values():
        assert set(summary) == {*ESTIMATES, *COUNTS, *TIMINGS, "planner_decisions"}
        assert summary["pod_starts"]["mean"] == 0, "local workers start no pods"
        for key in (*ESTIMATES, "model_loads"):
            assert set(summary[key]) == {"mean", "ci95"}
            assert summary[key]["mean"] > 0
    rr = data["policies"]["round-robin"]
    assert rr["normalized_makespan"] == {"mean": 1.0, "ci95": 0.0}


def test_results_md_tables(two_workers: Path) -> None:
    text = (two_workers / "results.md").read_text()
    data = json.loads((two_workers / "results.json").read_text())
    fate = data["policies"]["fate"]["normalized_makespan"]
    assert f"| **fate** | {fate['mean']:.3f} ± {fate['ci95']:.3f} |" in text
    assert "Gain vs best baseline" in text
    assert "airflow-fate bench --suite real-dag --seeds 2 --workflows 4" in text


def test_same_args_same_json_whatever_the_worker_count(two_workers: Path, tmp_path: Path) -> None:
    # fate is left out: its CP-SAT wall-clock limit makes it load-dependent when it falls
    # back (reported as planner_fallbacks); the other policies' results must not change.
    assert _bench(tmp_path / "one", "--jobs", "1", policies="greedy-eft") == 0
    first = json.loads((two_workers / "results.json").read_text())
    again = json.loads((tmp_path / "one" / "results.json").read_text())
    assert list(again["policies"]) == ["round-robin", "greedy-eft"]
    for policy, summary in again["policies"].items():
        assert _without_timings(summary) == _without_timings(first["policies"][policy])
    assert {k: v for k, v in again.items() if k != "policies"} == {
        k: v for k, v in first.items() if k != "policies"
    }


def test_prefix_reuse_sweep_writes_points_and_the_sweep_plot(tmp_path: Path) -> None:
    out = tmp_path / "pr"
    args = ["bench", "--suite", "prefix-reuse", "--seeds", "1", "--workflows", "2"]
    assert main([*args, "--policies", "greedy-eft", "--jobs", "1", "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    assert [p["prefix_fraction"] for p in data["points"]] == [0.0, 0.25, 0.5, 0.75, 0.9]
    assert {p["prefixes"] for p in data["points"]} == {4}
    assert data["policies"]["greedy-eft"]["normalized_p95"]["ci95"] is None, "one seed: null"
    assert (out / "prefix_sweep.png").read_bytes().startswith(PNG)
    assert "### Normalised P95" in (out / "results.md").read_text()


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        pytest.param(["--suite", "real-dag", "--policies", "fate,nope"], "--policies", id="policy"),
        pytest.param(["--suite", "real-dag", "--seeds", "0"], "--seeds", id="seeds"),
        pytest.param(["--suite", "real-dag", "--workflows", "0"], "--workflows", id="workflows"),
        pytest.param(["--suite", "real-dag", "--jobs", "0"], "--jobs", id="jobs"),
        pytest.param(["--suite", "real-dag", "--load", "0"], "--load", id="load"),
        pytest.param(["--suite", "nope"], "--suite", id="suite"),
    ],
)
def test_bad_options_exit_2_naming_the_option(
    args: list[str], flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", *args, "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {flag}: ")
    assert not (tmp_path / "x").exists()


def test_launcher_is_a_bench_dimension(tmp_path: Path) -> None:
    """``--launcher``: recorded, in the regenerate command, and priced in the runs."""
    runs = {}
    for launcher in ("worker-pods", "pod-per-stage"):
        out = tmp_path / launcher
        lazy = ["--lazy-pods"] if launcher == "worker-pods" else []
        assert _bench(out, "--launcher", launcher, *lazy, policies="greedy-eft") == 0
        data = json.loads((out / "results.json").read_text())
        assert data["launcher"] == launcher
        assert " ".join(["--launcher", launcher, *lazy]) in (out / "results.md").read_text()
        runs[launcher] = data["policies"]["greedy-eft"]
    pods, per_stage = runs["worker-pods"], runs["pod-per-stage"]
    assert 0 < pods["pod_starts"]["mean"] < per_stage["pod_starts"]["mean"]
    assert per_stage["pod_starts"]["mean"] == per_stage["model_loads"]["mean"], (
        "a pod per stage starts one pod and loads the model for every stage"
    )


def test_a_logged_bench_shows_progress_and_names_what_it_wrote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # pytest's captured stderr is not a terminal: the bar becomes plain lines.
    out = tmp_path / "logged"
    assert _bench(out, "--jobs", "1", policies="greedy-eft") == 0
    captured = capsys.readouterr()
    progress = [ln for ln in captured.err.splitlines() if ln.startswith("bench real-dag")]
    assert progress and progress[-1].startswith("bench real-dag: 4/4 ("), captured.err
    written = sorted(
        ln.removeprefix("wrote ") for ln in captured.out.splitlines() if "wrote " in ln
    )
    assert written == sorted(str(p) for p in out.iterdir()), "every file named, none missing"


def test_one_seed_plots_claim_no_interval() -> None:
    from airflow_fate.bench.plots import _spread_title

    class Seeds:
        suite = "real-dag"

        def __init__(self, seeds: list[int]) -> None:
            self.seeds = seeds

    assert "no confidence interval" in _spread_title(Seeds([0]))  # type: ignore[arg-type]
    assert "95% CI" not in _spread_title(Seeds([0]))  # type: ignore[arg-type]
    assert _spread_title(Seeds([0, 1])).endswith("2 seeds, mean ± 95% CI")  # type: ignore[arg-type]
