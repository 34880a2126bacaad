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

import itertools
import json
import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from airflow_fate.demo.environment import AirflowEnvironment, DagRunState
from airflow_fate.executor.store import FateStore, PlacementRow
from tests.integration.airflow.conftest import airflow_environment
from tests.pg import fresh_database

pytestmark = pytest.mark.slow

KILLS = int(os.environ.get("FATE_SCHEDULER_KILLS", "2"))
SEED = int(os.environ.get("FATE_KILL_SEED", "7"))
MOMENTS = ("placed", "loading", "queued", "random")
DAG_IDS = ["fate_rag_judge", "fate_multi_agent_review"]
MOMENT_TIMEOUT_S = 90.0
FINISH_TIMEOUT_S = 600.0
DEVICES = 3
"""The embedded inputs' virtual devices."""
WORKER_MODULE = "airflow_fate.runtime.worker"
RESTORED = re.compile(r"restored (\d+) resident models")


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
            resident = _resident_rows(env)
            _assert_one_worker_per_device(env)
            env.kill_service(name)
            kills.append(Kill(moment, seen, round(time.monotonic() - started, 1), resident))

        env.env["AIRFLOW__FATE__DETACH_ON_END"] = "False"  # the last one cleans up
        final = "scheduler-final"
        env.start_service(final, ["scheduler"])
        restored = _wait_started(env, final)
        if kills:
            kills[-1].restored = restored
        states = _wait_runs(env, final, runs)
        assert {s.state for s in states} == {"success"}, env.task_states(runs)
        _assert_one_worker_per_device(env)
        placements = _wait_closed(env)
        env.stop_service(final)
        _wait_until(lambda: not _workers(env), "device workers left after the last scheduler")

        tries = _tries(env, runs)
        _assert_tries_never_overlap(tries, placements)
        _assert_placements_match_airflow(tries, placements)

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
    before = len(_placements(env))
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
            rows = _placements(env)
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
    log = env.logs / f"{name}.log"
    deadline = time.monotonic() + 180.0
    while time.monotonic() < deadline:
        env.check_alive(name)
        found = RESTORED.search(log.read_text(errors="replace")) if log.exists() else None
        if found:
            return int(found.group(1))
        time.sleep(0.2)
    raise AssertionError(f"{name}'s executor did not start; see {log}")


def _wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def _wait_runs(env: AirflowEnvironment, name: str, runs: list[DagRunState]) -> list[DagRunState]:
    deadline = time.monotonic() + FINISH_TIMEOUT_S
    while True:
        env.check_alive(name)
        states = env.run_states(runs)
        if all(s.state in ("success", "failed") for s in states):
            return states
        assert time.monotonic() < deadline, f"runs unfinished: {states}"
        time.sleep(1.0)


def _wait_closed(env: AirflowEnvironment) -> list[PlacementRow]:
    deadline = time.monotonic() + 60.0
    while True:
        rows = _placements(env)
        if all(p.end is not None for p in rows):
            return rows
        assert time.monotonic() < deadline, [p.key for p in rows if p.end is None]
        time.sleep(0.5)


def _placements(env: AirflowEnvironment) -> list[PlacementRow]:
    with env.engine.connect() as conn:
        exists = conn.execute(text("SELECT to_regclass('fate_placement')")).scalar_one()
    return FateStore(env.engine).placements() if exists else []


def _resident_rows(env: AirflowEnvironment) -> int:
    with env.engine.connect() as conn:
        exists = conn.execute(text("SELECT to_regclass('fate_residency')")).scalar_one()
    if not exists:
        return 0
    return sum(1 for r in FateStore(env.engine).residency() if r.tier == "gpu")


def _workers(env: AirflowEnvironment) -> list[str]:
    """Socket paths of the live device workers started under this home."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in argv if a]
        if state == "Z" or WORKER_MODULE not in args or "--config" not in args:
            continue
        config = json.loads(args[args.index("--config") + 1])
        if str(env.home) in config["socket_path"]:
            out.append(config["socket_path"])
    return out


def _assert_one_worker_per_device(env: AirflowEnvironment) -> None:
    workers = _workers(env)
    assert len(workers) <= DEVICES and len(set(workers)) == len(workers), workers


@dataclass(frozen=True)
class Try:
    dag_id: str
    run_id: str
    task_id: str
    try_number: int
    state: str | None
    start: datetime | None
    end: datetime | None


def _tries(env: AirflowEnvironment, runs: list[DagRunState]) -> list[Try]:
    """Every try Airflow knows of: the task instances and their history."""
    out: list[Try] = []
    with env.engine.connect() as conn:
        for table in ("task_instance", "task_instance_history"):
            rows = conn.execute(
                text(
                    f"SELECT dag_id, run_id, task_id, try_number, state, start_date, end_date "
                    f"FROM {table} WHERE run_id = ANY(:runs)"
                ),
                {"runs": [r.run_id for r in runs]},
            )
            out += [Try(*row) for row in rows]
    return out


def _assert_tries_never_overlap(tries: list[Try], placements: list[PlacementRow]) -> None:
    spans: dict[tuple[str, str, str], list[tuple[datetime, datetime, str]]] = {}
    for t in tries:
        if t.start is not None and t.end is not None:
            spans.setdefault((t.dag_id, t.run_id, t.task_id), []).append(
                (t.start, t.end, f"airflow try {t.try_number}")
            )
    for p in placements:
        if p.end is not None:
            spans.setdefault((p.key.dag_id, p.key.run_id, p.key.task_id), []).append(
                (p.start, p.end, f"placement try {p.key.try_number}")
            )
    for task, intervals in spans.items():
        by_source: dict[str, list[tuple[datetime, datetime]]] = {}
        for s, e, label in intervals:
            by_source.setdefault(label.split()[0], []).append((s, e))
        for source, items in by_source.items():
            items.sort()
            for (_, end_a), (start_b, _) in itertools.pairwise(items):
                assert end_a <= start_b, f"{task}: two {source} tries overlap: {items}"


def _assert_placements_match_airflow(tries: list[Try], placements: list[PlacementRow]) -> None:
    rows = {
        (p.key.dag_id, p.key.run_id, p.key.task_id, p.key.try_number): p
        for p in placements
        if p.state != "abandoned"
    }
    ran = {(t.dag_id, t.run_id, t.task_id, t.try_number): t for t in tries if t.start}
    assert set(ran) <= set(rows), f"tries without a placement row: {sorted(set(ran) - set(rows))}"
    for k, t in ran.items():
        assert rows[k].state == t.state, f"{k}: placement {rows[k].state}, airflow {t.state}"
