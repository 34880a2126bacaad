"""Stopping the scheduler mid-run and starting it again (SQLite).

The scheduler stops while the first stage is loading its model; the executor leaves the
task and the device workers running (``detach_on_end``). The next scheduler rebuilds its
state from ``fate_placement`` and ``fate_residency``, adopts the running task, and the
run completes with every task run exactly once; the stages after the restart find the
model still resident where the store said it was.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.airflow.conftest import (
    RUN_TIMEOUT_S,
    airflow_environment,
    assert_every_task_placed,
    start,
)

pytestmark = pytest.mark.slow

DAG_ID = "fate_multi_agent_review"


def test_restart_loses_and_repeats_nothing(tmp_path: Path) -> None:
    fate = {"detach_on_end": "True"}
    with airflow_environment(tmp_path / "home", fate=fate) as env:
        start(env)
        runs = env.trigger([DAG_ID])
        _wait_for(lambda: env.task_states(runs).get((DAG_ID, runs[0].run_id, "draft")) == "running")
        env.stop_service("scheduler")
        stopped = env.placements([DAG_ID])
        assert [(p.key.task_id, p.end) for p in stopped] == [("draft", None)]

        env.start_service("scheduler-2", ["scheduler"])
        [final] = env.wait_runs(runs, RUN_TIMEOUT_S)
        assert final.state == "success"
        env.wait_placements_closed([DAG_ID], 60.0)

        placements = env.placements([DAG_ID])
        assert_every_task_placed(env, runs, placements)
        assert sorted(p.key.task_id for p in placements) == [
            "draft",
            "review_facts",
            "review_style",
            "revise",
        ], "each task placed exactly once"
        assert {p.key.try_number for p in placements} == {1}, "no task reset and rerun"
        assert {p.state for p in placements} == {"success"}
        draft = next(p for p in placements if p.key.task_id == "draft")
        after = [p for p in placements if p.key.task_id != "draft"]
        warm_on_draft_gpu = [
            p for p in after if p.gpus == draft.gpus and (p.measured or {}).get("model_warm")
        ]
        assert warm_on_draft_gpu, "residency survived the restart and the planner used it"

        log = (env.logs / "scheduler-2.log").read_text(errors="replace")
        assert "FATE executor adopted 1 of" in log
        assert "restored 1 resident models" in log


def _wait_for(condition, timeout_s: float = 240.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.5)
