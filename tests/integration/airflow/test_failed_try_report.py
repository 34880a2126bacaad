"""A failed try's report survives a retry queued before its process ended.

Airflow keeps one ``fate_measured`` XCom per task instance and deletes it when the next
try starts running. A retry can be queued while the failed try's process is still
winding down, so the executor must read the failed try's report before it launches the
retry, not when that process finally exits. The stand-in below behaves like Airflow: the
XCom belongs to the task instance and a launched try clears it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from airflow_fate.executor import airflow_db
from airflow_fate.executor.store import FateStore
from airflow_fate.launch.types import EventKind, LaunchEvent, LaunchRequest, TaskEvent, TaskKey
from tests.integration.airflow.driven_executor import InstantLauncher, driven_executor

pytest.importorskip("airflow")

RUN_ID = "run-00000"
FAILURE = {"failure": "worker-died", "message": "device worker killed", "try_number": 1}


class SlowExitLauncher(InstantLauncher):
    """Try 1 runs until `exit_first` is called; later tries succeed at once.

    ``xcom`` models Airflow's XCom table for the one task: launching a try clears it.
    """

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.xcom: dict[str, Any] = {}
        self.states: dict[int, str] = {}
        self._lingering: list[TaskKey] = []
        self._exited: list[TaskKey] = []

    def launch(self, request: LaunchRequest) -> None:
        self.xcom.clear()  # Airflow's ti_run deletes the task instance's XComs
        if request.key.try_number == 1:
            self.launched_keys.append(request.key)
            self._lingering.append(request.key)
            return
        self.states[request.key.try_number] = "success"
        super().launch(request)

    def exit_first(self) -> None:
        self._exited, self._lingering = self._lingering, []

    def poll(self, timeout_s: float = 0.0) -> list[TaskEvent]:
        events = super().poll(timeout_s)
        for key in self._lingering:
            events.append(LaunchEvent(EventKind.RUNNING, key, "slow", "local"))
        for key in self._exited:
            events.append(LaunchEvent(EventKind.FAILED, key, "slow", "local"))
        self._exited = []
        return events


def test_failed_try_keeps_its_report_when_the_retry_starts_before_it_exits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    launcher: SlowExitLauncher | None = None

    def read_outcome(engine: Any, key: TaskKey) -> airflow_db.Outcome:
        assert launcher is not None
        return airflow_db.Outcome(
            state=launcher.states.get(key.try_number),
            end=None,
            measured=airflow_db._this_try(dict(launcher.xcom) or None, key.try_number),
        )

    with driven_executor(tmp_path, monkeypatch, launcher_type=SlowExitLauncher) as driven:
        ex, fake, launcher = driven
        monkeypatch.setattr(airflow_db, "read_outcome", read_outcome)
        first = fake.workload(RUN_ID, 0)
        ex.queue_workload(first, None)
        _beat_until(ex, lambda: launcher.launched_keys)

        launcher.xcom.update(FAILURE)  # the try failed and said why...
        launcher.states[1] = "up_for_retry"
        ex.get_event_buffer()
        retry = first.model_copy(update={"ti": first.ti.model_copy(update={"try_number": 2})})
        ex.queue_workload(retry, None)  # ...and Airflow queued the retry before it exited
        _beat_until(ex, lambda: len(launcher.launched_keys) == 2)
        assert not launcher.xcom, "the retry's launch cleared the XCom, as Airflow's does"
        launcher.exit_first()
        _beat_until(ex, lambda: not ex._launch)

    rows = {
        r.key.try_number: r
        for r in FateStore(create_engine(f"sqlite:///{tmp_path / 'fate.db'}")).placements()
    }
    assert rows[1].state == "up_for_retry"
    assert rows[1].measured == FAILURE, "the failed try's report was read before the retry ran"
    assert rows[2].state == "success" and not rows[2].measured


def _beat_until(ex: Any, done: Any, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "the executor did not get there"
        ex.heartbeat()
        time.sleep(0.05)


def test_a_report_from_another_try_is_not_this_trys() -> None:
    assert airflow_db._this_try(FAILURE, 1) == FAILURE
    assert airflow_db._this_try(FAILURE, 2) is None
    assert airflow_db._this_try({"failure": "error"}, 3) == {"failure": "error"}
    assert airflow_db._this_try(["not", "a", "report"], 1) is None
