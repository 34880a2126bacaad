"""A device worker SIGKILLed mid-stage under real Airflow (SQLite, FateExecutor).

Only that try fails: its task log and its ``fate_placement`` row say the worker died;
Airflow's retry runs on a fresh worker and succeeds; the scheduler reports the lost
worker so the planner stops counting on the models it held.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from airflow_fate.demo.environment import AirflowEnvironment
from airflow_fate.launch.processes import read_pid_file
from tests.integration.airflow.conftest import RUN_TIMEOUT_S, airflow_environment, start

pytestmark = pytest.mark.slow

DAG_ID = "fate_worker_death"
STAGE_STARTED = re.compile(r"stage \S+ started")
DAG_FILE = """
from datetime import timedelta

from airflow.sdk import DAG

from airflow_fate.operators import LLMStageOperator

with DAG(
    "fate_worker_death",
    schedule=None,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=1)},
) as dag:
    LLMStageOperator(
        task_id="write",
        model="smollm2-135m-instruct",
        prompt="Write a long story about a scheduler that keeps models warm.",
        max_new_tokens=96,
    )
"""


def test_killed_worker_fails_one_try_and_the_retry_succeeds(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "worker_death.py").write_text(DAG_FILE, encoding="utf-8")
    with airflow_environment(tmp_path / "home", dags_folder=dags) as env:
        start(env)
        [run] = env.trigger([DAG_ID])
        killed = _kill_worker_once_a_stage_runs(env)
        [final] = env.wait_runs([run], RUN_TIMEOUT_S)
        assert final.state == "success", env.task_states([run])
        assert env.wait_placements_closed([DAG_ID], 60.0)

        tries = sorted(env.placements([DAG_ID]), key=lambda p: p.key.try_number)
        assert [p.key.try_number for p in tries] == [1, 2]
        assert tries[0].state in ("up_for_retry", "failed") and tries[1].state == "success"
        failure = (tries[0].measured or {}).get("failure")
        assert failure == "worker-died", tries[0].measured
        assert (tries[1].measured or {}).get("total_s"), "the retry ran on a device"

        attempt_1 = _task_log(env, 1)
        assert "failed [worker-died]" in attempt_1, attempt_1[-3000:]
        scheduler = (env.logs / "scheduler.log").read_text(errors="replace")
        lost = rf"lost their worker: device worker \S+ \(pid {killed}\) was killed by SIGKILL"
        assert re.search(lost, scheduler), "the planner was told the worker's state is gone"


def _kill_worker_once_a_stage_runs(env: AirflowEnvironment, timeout_s: float = 300.0) -> int:
    """SIGKILL the device worker whose log says it started a stage; its pid."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for log in sorted(env.run_dir.glob("w*.log")):
            if not STAGE_STARTED.search(log.read_text(errors="replace")):
                continue
            recorded = read_pid_file(log.with_suffix(".pid"))
            assert recorded is not None, f"no pid file beside {log}"
            os.kill(recorded[0], signal.SIGKILL)
            return recorded[0]
        time.sleep(0.2)
    raise AssertionError("no device worker started a stage in time")


def _task_log(env: AirflowEnvironment, attempt: int) -> str:
    [log] = list((env.home / "logs").rglob(f"*task_id=write*/attempt={attempt}.log"))
    return log.read_text(errors="replace")
