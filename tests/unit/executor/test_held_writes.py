"""`HeldWrites`: order kept, back-off between retries, whole-node writes coalesced."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.exc import OperationalError

from airflow_fate.executor.held_writes import FIRST_RETRY_S, MAX_RETRY_S, HeldWrites


class FlakyTable:
    """Records writes; refuses them while ``down``, counting each attempt."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, object]] = []
        self.down = False
        self.attempts = 0

    def write(self, name: str, value: object) -> None:
        self.attempts += 1
        if self.down:
            raise OperationalError("INSERT", {}, ConnectionError("server closed the connection"))
        self.rows.append((name, value))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def table() -> FlakyTable:
    return FlakyTable()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def writes(clock: Clock) -> HeldWrites:
    return HeldWrites(logging.getLogger("test"), clock)


def test_writes_go_straight_through_while_the_database_is_up(
    table: FlakyTable, writes: HeldWrites
) -> None:
    writes.submit(table.write, "launch", 1)
    writes.submit(table.write, "end", 1)
    assert table.rows == [("launch", 1), ("end", 1)]
    assert writes.held == 0 and writes.written_late == 0


def test_refused_writes_are_held_in_order_and_land_when_the_database_is_back(
    table: FlakyTable, writes: HeldWrites, clock: Clock
) -> None:
    table.down = True
    writes.submit(table.write, "launch", 1)
    writes.submit(table.write, "pid", 1)
    writes.submit(table.write, "end", 1)
    assert writes.held == 3 and table.rows == []
    table.down = False
    clock.now += FIRST_RETRY_S
    assert writes.flush() == 3
    assert table.rows == [("launch", 1), ("pid", 1), ("end", 1)]
    assert writes.held == 0 and writes.written_late == 3 and writes.outage_s == 0.0


def test_a_new_write_never_overtakes_held_ones(
    table: FlakyTable, writes: HeldWrites, clock: Clock
) -> None:
    table.down = True
    writes.submit(table.write, "launch", 1)
    table.down = False  # back, but the retry is not due yet
    writes.submit(table.write, "end", 1)
    assert table.rows == [] and writes.held == 2
    clock.now += FIRST_RETRY_S
    writes.flush()
    assert table.rows == [("launch", 1), ("end", 1)]


def test_retries_back_off_so_a_dead_database_is_not_hammered(
    table: FlakyTable, writes: HeldWrites, clock: Clock
) -> None:
    table.down = True
    writes.submit(table.write, "launch", 1)
    gaps = []
    for _ in range(8):
        before = table.attempts
        start = clock.now
        while table.attempts == before:
            clock.now += 0.5
            writes.submit(table.write, "more", 0)  # every heartbeat adds writes
        gaps.append(clock.now - start)
    assert gaps[0] <= FIRST_RETRY_S + 0.5
    assert gaps == sorted(gaps) and gaps[-1] >= MAX_RETRY_S
    assert max(gaps) <= MAX_RETRY_S + 0.5
    assert writes.outage_s > 0


def test_a_whole_node_write_replaces_its_held_predecessor(
    table: FlakyTable, writes: HeldWrites, clock: Clock
) -> None:
    table.down = True
    writes.submit(table.write, "residency", "v1", replaces=("residency", "n0"))
    writes.submit(table.write, "launch", 1)
    writes.submit(table.write, "residency", "v2", replaces=("residency", "n0"))
    writes.submit(table.write, "residency", "n1", replaces=("residency", "n1"))
    assert writes.held == 3
    table.down = False
    clock.now += FIRST_RETRY_S
    writes.flush()
    assert table.rows == [("launch", 1), ("residency", "v2"), ("residency", "n1")]
