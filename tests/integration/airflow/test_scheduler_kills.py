"""The scheduler SIGKILLed at chosen moments, on PostgreSQL, and started again each time.

Real Airflow (API server, scheduler with `FateExecutor`, real models on the embedded
virtual devices) runs the example DAGs while the test kills the scheduler's process
group with SIGKILL: no ``end()``, no detaching, no last write. Task processes and device
workers run in sessions of their own and live on, as they do when a scheduler process
dies. Each kill is aimed at a moment found by polling the database:

- ``placed``: a new ``fate_placement`` row appeared (the executor is launching a try);
- ``loading``: a try that must load its model cold started under 5 s ago;
- ``queued``: a task instance is queued (the planner holds it or is deciding);
- ``random``: a random delay after the scheduler started.

After each kill a new scheduler starts; after the last one it runs everything to the
end (no task has retries, so a lost or failed try fails its run). Then:

- every run and task instance succeeded;
- no task's tries overlap in time (Airflow's task instances and their history, and the
  executor's placement rows): nothing ran twice at once;
- ``fate_placement`` agrees with Airflow: one closed row per try Airflow ran, same state;
- never more device workers than devices, one per device, and none left once the last
  scheduler stops;
- a scheduler started while workers held models restored them.

``FATE_SCHEDULER_KILLS`` sets the number of kills (CI: 2; the recorded campaign in
``docs/reliability.md`` used more); ``FATE_KILL_SEED`` the random delays.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from airflow_fate.demo.environment import AirflowEnvironment, DagRunState
from tests.integration.airflow.conftest import airflow_environment
from tests.integration.airflow.fault_checks import (
    assert_no_gpu_double_booked,
    assert_one_worker_per_device,
    assert_placements_match_airflow,
    assert_tries_never_overlap,
    placements,
    resident_rows,
    tries_of,
    wait_closed,
    wait_for_log,
    wait_runs,
    wait_until,
    workers,
)
from tests.pg import fresh_database

pytestmark = pytest.mark.slow

KILLS = int(os.environ.get("FATE_SCHEDULER_KILLS", "2"))
SEED = int(os.environ.get("FATE_KILL_SEED", "7"))
MOMENTS = ("placed", "loading", "queued", "random")
DAG_IDS = ["fate_rag_judge", "fate_multi_agent_review"]
MOMENT_TIMEOUT_S = 90.0
RESTORED = r"restored (\d+) resident models"


@dataclass
class Kill:
    """One kill: the moment aimed at, what was seen, what the next scheduler restored."""

    moment: str
    seen: bool
    alive_s: float
    resident_rows: int
    restored: int | None = None


def test_scheduler_kills_lose_and_repeat_nothing(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    kills: list[Kill] = []
    with (
        fresh_database("fate_kills") as url,
        airflow_environment(tmp_path / "home", db_url=url, fate={"detach_on_end": "True"}) as env,
    ):
        env.migrate()  # the test starts (and kills) every scheduler itself
        env.start_api_server()
        env.reserialize()
        env.wait_api()
        runs = env.trigger(DAG_IDS)
        for i in range(KILLS):
            runs += _keep_work_in_flight(env, runs)
            name = f"scheduler-{i}"
            started = time.monotonic()
            env.start_service(name, ["scheduler"])
            restored = _wait_started(env, name)
            if kills:
                kills[-1].restored = restored
            moment = MOMENTS[i % len(MOMENTS)]
            seen = _wait_for(env, name, moment, rng)
            resident = resident_rows(env)
            assert_one_worker_per_device(env)
            env.kill_service(name)
            kills.append(Kill(moment, seen, round(time.monotonic() - started, 1), resident))

        env.env["AIRFLOW__FATE__DETACH_ON_END"] = "False"  # the last one cleans up
        final = "scheduler-final"
        env.start_service(final, ["scheduler"])
        restored = _wait_started(env, final)
        if kills:
            kills[-1].restored = restored
        states = wait_runs(env, final, runs)
        assert {s.state for s in states} == {"success"}, env.task_states(runs)
        assert_one_worker_per_device(env)
        rows = wait_closed(env)
        env.stop_service(final)
        wait_until(lambda: not workers(env), "device workers left after the last scheduler")

        tries = tries_of(env, runs)
        assert_tries_never_overlap(tries, rows)
        assert_placements_match_airflow(tries, rows)
        assert_no_gpu_double_booked(rows)

    print("\nscheduler kills:", json.dumps([k.__dict__ for k in kills], indent=1))
    assert sum(k.seen for k in kills) >= (len(kills) + 1) // 2, "most kills hit their moment"
    for k in kills:
        if k.resident_rows:
            assert k.restored, f"models resident at a kill were not restored: {k}"


def _keep_work_in_flight(env: AirflowEnvironment, runs: list[DagRunState]) -> list[DagRunState]:
    """Trigger another batch when fewer than two runs are unfinished."""
    unfinished = [s for s in env.run_states(runs) if s.state not in ("success", "failed")]
    return env.trigger(DAG_IDS) if len(unfinished) < 2 else []


def _wait_for(env: AirflowEnvironment, name: str, moment: str, rng: random.Random) -> bool:
    """Wait until ``moment`` (see the module docstring); whether it was seen in time."""
    if moment == "random":
        time.sleep(rng.uniform(2.0, 20.0))
        env.check_alive(name)
        return True
    before = len(placements(env))
    deadline = time.monotonic() + MOMENT_TIMEOUT_S
    while time.monotonic() < deadline:
        env.check_alive(name)
        if moment == "queued":
            with env.engine.connect() as conn:
                queued = conn.execute(
                    text("SELECT count(*) FROM task_instance WHERE state = 'queued'")
                ).scalar_one()
            if queued:
                return True
        else:
            rows = placements(env)
            if moment == "placed" and len(rows) > before:
                return True
            now = datetime.now(UTC)
            if moment == "loading" and any(
                p.end is None
                and (p.predicted or {}).get("load", 0.0) > 0
                and (now - p.start).total_seconds() < 5.0
                for p in rows
            ):
                return True
        time.sleep(0.1)
    return False


def _wait_started(env: AirflowEnvironment, name: str) -> int:
    """Wait for ``name``'s executor to start; how many resident models it restored."""
    return int(wait_for_log(env, name, RESTORED).group(1))
