"""Two Airflow schedulers with `FateExecutor` on one PostgreSQL database (Airflow HA).

Both schedulers run the whole time; only the executor holding the planner lease
(`airflow_fate.executor.lease`) plans and launches, the other stands by with no free
slots so its scheduler queues nothing to it. The test SIGKILLs the active scheduler
while a stage runs: the standby must take the lease within `TAKEOVER_LIMIT_S`, adopt
the running tries with the state the database holds, and finish every run. Then: no
GPU was ever given to two stages at once, no task ran twice, every try Airflow ran has
its placement row, and the standby placed nothing before it took over.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.integration.airflow.conftest import airflow_environment
from tests.integration.airflow.fault_checks import (
    assert_no_gpu_double_booked,
    assert_one_worker_per_device,
    assert_placements_match_airflow,
    assert_tries_never_overlap,
    placements,
    tries_of,
    wait_closed,
    wait_for_log,
    wait_runs,
    wait_until,
    workers,
)
from tests.pg import fresh_database

pytestmark = pytest.mark.slow

DAG_IDS = ["fate_rag_judge", "fate_multi_agent_review"]
TAKEOVER_LIMIT_S = 15.0
"""Kill to the standby's take-over: the server ends the dead session at once, and the
standby tries the lease at every executor heartbeat."""
STARTED = r"FATE executor started"
STANDBY = r"FATE executor is a standby"
TOOK_OVER = r"takes over planning after"


def test_standby_scheduler_takes_over_and_nothing_is_double_booked(tmp_path: Path) -> None:
    with (
        fresh_database("fate_ha") as url,
        airflow_environment(tmp_path / "home", db_url=url) as env,
    ):
        env.migrate()
        env.start_api_server()
        env.reserialize()
        env.wait_api()
        env.start_service("scheduler-a", ["scheduler"])
        wait_for_log(env, "scheduler-a", STARTED)
        env.start_service("scheduler-b", ["scheduler"])
        wait_for_log(env, "scheduler-b", STANDBY)

        runs = env.trigger(DAG_IDS) + env.trigger(DAG_IDS)
        wait_until(lambda: any(p.end is None for p in placements(env)), "no stage ran", 240.0)
        before_kill = len(placements(env))
        env.kill_service("scheduler-a")
        killed_at = time.monotonic()
        wait_for_log(env, "scheduler-b", TOOK_OVER, timeout_s=TAKEOVER_LIMIT_S + 30)
        takeover_s = time.monotonic() - killed_at

        states = wait_runs(env, "scheduler-b", runs)
        assert {s.state for s in states} == {"success"}, env.task_states(runs)
        assert_one_worker_per_device(env)
        rows = wait_closed(env)
        log_b = (env.logs / "scheduler-b.log").read_text(errors="replace")
        env.stop_service("scheduler-b")
        wait_until(lambda: not workers(env), "device workers left after the last scheduler")

        tries = tries_of(env, runs)
        assert_no_gpu_double_booked(rows)
        assert_tries_never_overlap(tries, rows)
        assert_placements_match_airflow(tries, rows)

    print(f"\ntake-over {takeover_s:.1f} s after the kill; {before_kill} placements before it")
    assert takeover_s <= TAKEOVER_LIMIT_S
    standby_part = log_b[: re.search(TOOK_OVER, log_b).start()]  # type: ignore[union-attr]
    assert "FATE placed" not in standby_part, "the standby planned while the other was active"
    assert re.search(r"FATE executor adopted [1-9]\d* of", log_b), "running tries were adopted"
    assert len(rows) > before_kill, "the standby placed the rest of the work"
