"""`FateExecutor` as a standby and when it loses the planner lease (driven executor).

The lease itself is tested on PostgreSQL (`tests/unit/executor/test_lease.py`) and with
two real schedulers (`test_two_schedulers.py`); here a stand-in lease lets each branch
of the executor run on demand: a standby offers no slots and launches nothing until it
takes the lease, and an active executor whose lease is gone stops planning and raises
so its scheduler exits, leaving its tasks to the new holder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_fate.executor.fate_executor import PlannerLeaseLostError
from tests.integration.airflow.driven_executor import driven_executor, heartbeat, queue_new_runs

pytest.importorskip("airflow")


class StubLease:
    """A lease whose availability the test sets (``free``); records releases."""

    free = False
    held_now = False
    released = 0

    def __init__(self, url: str) -> None:
        pass

    @staticmethod
    def needed(url: str) -> bool:
        return True

    def try_acquire(self) -> bool:
        StubLease.held_now = StubLease.held_now or StubLease.free
        return StubLease.held_now

    def held(self) -> bool:
        return StubLease.held_now

    def release(self) -> None:
        StubLease.released += 1
        StubLease.held_now = False


@pytest.fixture
def lease(monkeypatch: pytest.MonkeyPatch) -> type[StubLease]:
    monkeypatch.setattr(StubLease, "free", False)
    monkeypatch.setattr(StubLease, "held_now", False)
    monkeypatch.setattr(StubLease, "released", 0)
    monkeypatch.setattr("airflow_fate.executor.fate_executor.PlannerLease", StubLease)
    return StubLease


def test_standby_launches_nothing_until_it_takes_the_lease(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lease: type[StubLease]
) -> None:
    with driven_executor(tmp_path, monkeypatch) as (ex, fake, launcher):
        assert ex._rt is None and ex.slots_available == 0
        queue_new_runs(ex, fake, 2, 2)  # as if queued before the scheduler saw no slots
        for _ in range(3):
            heartbeat(ex, fake)
        assert launcher.launches == 0, "a standby launched work"

        lease.free = True
        heartbeat(ex, fake)
        assert ex._rt is not None and ex.slots_available > 0
        for _ in range(5):
            heartbeat(ex, fake)
        assert launcher.launches >= 2, "queued work launched once the lease was taken"
    assert lease.released == 1


def test_an_executor_that_loses_the_lease_stops_planning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lease: type[StubLease]
) -> None:
    lease.free = True
    with driven_executor(tmp_path, monkeypatch) as (ex, fake, launcher):
        assert ex._rt is not None
        queue_new_runs(ex, fake, 1, 1)
        heartbeat(ex, fake)
        launched = launcher.launches
        lease.held_now, lease.free = False, False  # its session ended; another holds it
        queue_new_runs(ex, fake, 3, 3)
        with pytest.raises(PlannerLeaseLostError, match="lost its planner lease"):
            ex.heartbeat()
        ex.heartbeat()  # fenced: quiet, and still places nothing
        assert launcher.launches == launched
        detached: list[Any] = []
        monkeypatch.setattr(launcher, "close", lambda *, detach=False: detached.append(detach))
    assert detached == [True], "a fenced executor leaves its tasks for the new holder"
