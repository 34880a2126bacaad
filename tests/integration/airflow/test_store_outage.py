"""PostgreSQL unreachable mid-run: the executor goes on, no row lost.

The real `FateExecutor` (`driven_executor`) keeps its tables in PostgreSQL reached
through a proxy the test cuts for `OUTAGE_S` seconds of wall time while runs flow:
every connection drops and new ones are refused, as when the database restarts. Two
cases:

- ``store``: only the ``fate_*`` tables' database is down (Airflow's is elsewhere). Tasks
  must keep launching and finishing: placing work does not wait for the store.
- ``shared``: Airflow's database is the same PostgreSQL, so the executor's reads of task
  outcomes and DAG runs fail too. Nothing new can be queued then (Airflow's scheduler
  cannot either); the loop must survive and catch up once the database is back.

Either way the scheduler's loop must not raise, and once the database is back every held
write must land in order: one closed placement row per launched try, and each node's
residency as the planner last saw it. ``FATE_STORE_OUTAGES`` sets how many outages one
run injects (default 1; the recorded campaign runs more).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from airflow_fate.executor.restore import residency_rows
from airflow_fate.executor.store import FateStore
from tests.integration.airflow.driven_executor import (
    TASKS,
    driven_executor,
    heartbeat,
    queue_new_runs,
)
from tests.pg import fresh_database
from tests.tcp_cut import CuttableProxy

pytest.importorskip("airflow")

OUTAGES = int(os.environ.get("FATE_STORE_OUTAGES", "1"))
RUNS_PER_OUTAGE = 30
"""Runs started per outage, so every outage has work in flight (tasks finish instantly)."""
CUT_AFTER_RUNS = 8
RUNS = RUNS_PER_OUTAGE * OUTAGES + 10
OUTAGE_S = 12.0
IN_FLIGHT = 4
TICK_S = 0.05


@pytest.mark.parametrize("shared", [False, True], ids=["store", "shared"])
def test_database_outage_holds_writes_and_loses_no_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared: bool
) -> None:
    with fresh_database("fate_outage") as url, CuttableProxy("127.0.0.1", _port(url)) as proxy:
        with driven_executor(tmp_path, monkeypatch, store_conn=proxy.url(url)) as driven:
            ex, fake, launcher = driven

            def tick(started: int = RUNS) -> None:
                queue_new_runs(ex, fake, IN_FLIGHT, started)
                heartbeat(ex, fake)  # raises if the executor's loop does
                time.sleep(TICK_S)

            held_in_outage, launched_in_outage, written_late = [], [], 0
            recovery_s: list[float] = []
            for outage in range(OUTAGES):
                started = RUNS_PER_OUTAGE * (outage + 1)
                while len(fake.finished) < RUNS_PER_OUTAGE * outage + CUT_AFTER_RUNS:
                    tick(started)
                proxy.cut()
                fake.down = shared
                cut_at, launched_before = time.monotonic(), launcher.launches
                while time.monotonic() - cut_at < OUTAGE_S:
                    tick(started)
                held_in_outage.append(ex._writes.held)
                launched_in_outage.append(launcher.launches - launched_before)
                proxy.restore()
                fake.down = False
                back_at = time.monotonic()
                while ex._writes.held or ex._unread:
                    assert time.monotonic() - back_at < 60.0, (
                        f"{ex._writes.held} writes held, {len(ex._unread)} outcomes unread"
                    )
                    tick(started)
                recovery_s.append(time.monotonic() - back_at)
                written_late = ex._writes.written_late
            while len(fake.finished) < RUNS:
                tick()
            rt = ex._rt
            expected_residency = {
                node.name: _residency_set(residency_rows(rt, i, {}))
                for i, node in enumerate(rt.cluster.nodes)
            }
        print(
            f"\n{OUTAGES} outage(s) of {OUTAGE_S:.0f} s ({'shared' if shared else 'store'}): "
            f"writes held {held_in_outage}, launched during {launched_in_outage}, "
            f"caught up in {[round(r, 1) for r in recovery_s]} s"
        )

        assert written_late >= sum(held_in_outage) > 0
        assert proxy.refused > 0, "the executor did try the database during the outage"
        if shared:
            assert fake.refused_reads > 0, "the executor did read Airflow's database meanwhile"
        else:
            assert all(held > 0 for held in held_in_outage)
            assert all(n > 0 for n in launched_in_outage), "placing work waited for the store"

        store = FateStore(create_engine(url))
        try:
            rows = store.placements()
            stored_residency = store.residency()
        finally:
            store.engine.dispose()
    assert len(launcher.launched_keys) == RUNS * len(TASKS)
    assert Counter(r.key for r in rows) == Counter(launcher.launched_keys), "a row lost or doubled"
    assert {r.state for r in rows} == {"success"}
    assert all(r.end is not None and r.run_s is not None for r in rows)
    for name, expected in expected_residency.items():
        assert _residency_set([r for r in stored_residency if r.node == name]) == expected


def _port(url: str) -> int:
    return int(url.split("@", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])


def _residency_set(rows: Any) -> set[tuple[str, int, str, str, tuple[int, ...]]]:
    return {(r.node, r.gpu, r.model, r.tier, tuple(r.shard_group)) for r in rows}
