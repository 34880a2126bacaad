"""The ``fate_*`` store's PostgreSQL unreachable mid-run: the executor goes on, no row lost.

The real `FateExecutor` (`driven_executor`) keeps its tables in PostgreSQL reached
through a proxy the test cuts for `OUTAGE_S` seconds of wall time while runs flow:
every connection drops and new ones are refused, as when the database restarts. The
scheduler's loop must not raise, tasks must keep launching and finishing (placing work
does not wait for the store), and once the database is back every held write must land
in order: one closed placement row per launched try, and each node's residency as the
planner last saw it.
"""

from __future__ import annotations

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

RUNS = 40
CUT_AFTER_RUNS = 8
OUTAGE_S = 12.0
IN_FLIGHT = 4
TICK_S = 0.05


def test_store_outage_holds_writes_and_loses_no_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fresh_database("fate_outage") as url, CuttableProxy("127.0.0.1", _port(url)) as proxy:
        with driven_executor(tmp_path, monkeypatch, store_conn=proxy.url(url)) as driven:
            ex, fake, launcher = driven

            def tick() -> None:
                queue_new_runs(ex, fake, IN_FLIGHT, RUNS)
                heartbeat(ex, fake)  # raises if the executor's loop does
                time.sleep(TICK_S)

            while len(fake.finished) < CUT_AFTER_RUNS:
                tick()
            proxy.cut()
            cut_at, launched_before = time.monotonic(), launcher.launches
            while time.monotonic() - cut_at < OUTAGE_S:
                tick()
            held_in_outage = ex._writes.held
            launched_in_outage = launcher.launches - launched_before
            proxy.restore()
            deadline = time.monotonic() + 60.0
            while len(fake.finished) < RUNS or ex._writes.held:
                assert time.monotonic() < deadline, f"{ex._writes.held} writes still held"
                tick()
            rt = ex._rt
            expected_residency = {
                node.name: _residency_set(residency_rows(rt, i, {}))
                for i, node in enumerate(rt.cluster.nodes)
            }
            written_late = ex._writes.written_late

        assert launched_in_outage > 0, "placing work waited for the store"
        assert held_in_outage > 0 and written_late >= held_in_outage
        assert proxy.refused > 0, "the executor did try the database during the outage"

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
