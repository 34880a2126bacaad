"""Checks shared by the fault tests that run real Airflow on PostgreSQL.

What "nothing lost, nothing run twice, nothing double-booked" means, read from Airflow's
tables (task instances and their history) and the executor's (``fate_placement``,
``fate_residency``), and which device worker processes live under a home.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text

from airflow_fate.demo.environment import AirflowEnvironment, DagRunState
from airflow_fate.executor.store import FateStore, PlacementRow
from tests.integration.airflow.conftest import live_processes

DEVICES = 3
"""The embedded inputs' virtual devices."""
WORKER_MODULE = "airflow_fate.runtime.worker"
FINISH_TIMEOUT_S = 600.0


def wait_for_log(
    env: AirflowEnvironment, name: str, pattern: str, timeout_s: float = 180.0
) -> re.Match[str]:
    """Wait until service ``name``'s log matches ``pattern``; the match."""
    log = env.logs / f"{name}.log"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        env.check_alive(name)
        found = re.search(pattern, log.read_text(errors="replace")) if log.exists() else None
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{name}'s log never matched {pattern!r}; see {log}")


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def wait_runs(env: AirflowEnvironment, name: str, runs: list[DagRunState]) -> list[DagRunState]:
    deadline = time.monotonic() + FINISH_TIMEOUT_S
    while True:
        env.check_alive(name)
        states = env.run_states(runs)
        if all(s.state in ("success", "failed") for s in states):
            return states
        assert time.monotonic() < deadline, f"runs unfinished: {states}"
        time.sleep(1.0)


def wait_closed(env: AirflowEnvironment) -> list[PlacementRow]:
    deadline = time.monotonic() + 60.0
    while True:
        rows = placements(env)
        if all(p.end is not None for p in rows):
            return rows
        assert time.monotonic() < deadline, [p.key for p in rows if p.end is None]
        time.sleep(0.5)


def placements(env: AirflowEnvironment) -> list[PlacementRow]:
    with env.engine.connect() as conn:
        exists = conn.execute(text("SELECT to_regclass('fate_placement')")).scalar_one()
    return FateStore(env.engine).placements() if exists else []


def resident_rows(env: AirflowEnvironment) -> int:
    with env.engine.connect() as conn:
        exists = conn.execute(text("SELECT to_regclass('fate_residency')")).scalar_one()
    if not exists:
        return 0
    return sum(1 for r in FateStore(env.engine).residency() if r.tier == "gpu")


def workers(env: AirflowEnvironment) -> list[str]:
    """Socket paths of the live device workers started under this home."""
    out = []
    for _, args in live_processes():
        if WORKER_MODULE not in args or "--config" not in args:
            continue
        config = json.loads(args[args.index("--config") + 1])
        if str(env.home) in config["socket_path"]:
            out.append(config["socket_path"])
    return out


def assert_one_worker_per_device(env: AirflowEnvironment) -> None:
    live = workers(env)
    assert len(live) <= DEVICES and len(set(live)) == len(live), live


@dataclass(frozen=True)
class Try:
    dag_id: str
    run_id: str
    task_id: str
    try_number: int
    state: str | None
    start: datetime | None
    end: datetime | None


def tries_of(env: AirflowEnvironment, runs: list[DagRunState]) -> list[Try]:
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


def assert_tries_never_overlap(tries: list[Try], placements: list[PlacementRow]) -> None:
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


def assert_placements_match_airflow(tries: list[Try], placements: list[PlacementRow]) -> None:
    rows = {
        (p.key.dag_id, p.key.run_id, p.key.task_id, p.key.try_number): p
        for p in placements
        if p.state != "abandoned"
    }
    ran = {(t.dag_id, t.run_id, t.task_id, t.try_number): t for t in tries if t.start}
    assert set(ran) <= set(rows), f"tries without a placement row: {sorted(set(ran) - set(rows))}"
    for k, t in ran.items():
        assert rows[k].state == t.state, f"{k}: placement {rows[k].state}, airflow {t.state}"


def assert_no_gpu_double_booked(placements: list[PlacementRow]) -> None:
    """No two placements held one GPU at the same time."""
    by_gpu: dict[tuple[str, int], list[PlacementRow]] = {}
    for p in placements:
        if p.end is None or p.state == "abandoned":
            continue
        for g in p.gpus:
            by_gpu.setdefault((p.node, g), []).append(p)
    for gpu, rows in by_gpu.items():
        rows.sort(key=lambda p: p.start)
        for a, b in itertools.pairwise(rows):
            assert a.end is not None and a.end <= b.start, (
                f"GPU {gpu} double-booked: {a.key} and {b.key}"
            )
