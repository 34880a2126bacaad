"""`run_jobs`: results in job order, progress ticks, and user errors from workers."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_fate.bench.runner import Job, Setting, run_jobs
from airflow_fate.errors import InputError

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _setting(suite: str = "real-dag") -> Setting:
    return Setting(
        suite=suite,
        workflows=2,
        load=0.7,
        noise=0.0,
        cluster=str(EXAMPLES / "cluster.yaml"),
        models=str(EXAMPLES / "models.yaml"),
    )


def test_results_come_back_in_job_order_with_progress() -> None:
    jobs = [Job("greedy-eft", 1, keep_bars=True), Job("round-robin", 0), Job("round-robin", 1)]
    ticks: list[tuple[int, int]] = []
    results = run_jobs(_setting(), jobs, workers=1, progress=lambda d, t: ticks.append((d, t)))
    assert [r.job for r in results] == jobs
    assert ticks == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert results[0].bars and not results[1].bars, "bars only where asked"
    assert results[0].makespan_s >= results[0].lower_bound_s > 0
    assert {g for b in results[0].bars for g in b.gpus} <= set(range(40))
    assert results[1].makespan_s != results[2].makespan_s, "each seed its own workload"


def test_a_user_error_in_a_worker_is_raised_as_input_error() -> None:
    jobs = [Job("round-robin", 0), Job("round-robin", 1)]
    with pytest.raises(InputError, match="unknown suite") as err:
        run_jobs(_setting("no-such-suite"), jobs, workers=2)
    assert err.value.source == "--suite"
