"""Lifecycle decisions of the GPU-worker pool (create, reuse, replace, wait, expire)."""

from __future__ import annotations

import pytest

from airflow_fate.launch.pool import (
    Create,
    Reuse,
    Wait,
    WorkerPhase,
    WorkerPool,
    gpu_set,
    overlaps,
)
from airflow_fate.launch.types import GpuPlacement, TaskKey

A0 = ("node-a", (0,))
A1 = ("node-a", (1,))
A01 = ("node-a", (0, 1))
B0 = ("node-b", (0,))


def key(task: str = "draft") -> TaskKey:
    return TaskKey("dag", task, "run", 1)


def ready_pool(*sets: tuple[str, tuple[int, ...]], idle_s: float = 60.0) -> WorkerPool:
    pool = WorkerPool(idle_s)
    for i, gpus in enumerate(sets):
        pool.created(f"w{i}", gpus, now=0.0)
        pool.ready(f"w{i}", now=1.0)
    return pool


def test_first_stage_on_a_gpu_set_creates_a_worker() -> None:
    assert WorkerPool(60.0).place(A0) == Create(A0)


def test_a_live_worker_for_exactly_the_set_is_reused_starting_or_ready() -> None:
    pool = WorkerPool(60.0)
    pool.created("w0", A0, now=0.0)
    assert pool.place(A0) == Reuse("w0"), "a starting worker takes work queued for it"
    pool.ready("w0", now=1.0)
    pool.task_started("w0", key())
    assert pool.place(A0) == Reuse("w0"), "a busy worker queues the next stage itself"


def test_other_nodes_and_gpus_do_not_interfere() -> None:
    pool = ready_pool(A0, B0)
    assert pool.place(A1) == Create(A1)
    assert not overlaps(A0, B0) and overlaps(A0, A01) and not overlaps(A0, A1)


def test_a_shard_group_replaces_the_idle_workers_on_its_gpus() -> None:
    pool = ready_pool(A0, A1, B0)
    assert pool.place(A01) == Create(A01, replaces=("w0", "w1"))


def test_a_single_gpu_after_a_shard_group_replaces_the_group() -> None:
    pool = ready_pool(A01)
    assert pool.place(A1) == Create(A1, replaces=("w0",))


def test_never_replaced_under_a_running_stage() -> None:
    pool = ready_pool(A0, A1)
    pool.task_started("w1", key("review"))
    assert pool.place(A01) == Wait(("w1",))
    pool.task_ended(key("review"), now=5.0)
    assert pool.place(A01) == Create(A01, replaces=("w0", "w1"))


def test_a_worker_for_the_same_set_going_away_blocks_until_gone() -> None:
    pool = ready_pool(A0)
    pool.deleting(["w0"])
    assert pool.holding(A0) is None
    assert pool.place(A0) == Wait(("w0",)), "its pod name is still taken"
    pool.gone("w0")
    assert pool.place(A0) == Create(A0)


def test_workers_already_going_away_are_not_deleted_twice() -> None:
    pool = ready_pool(A0, A1)
    pool.deleting(["w0"])
    assert pool.place(A01) == Create(A01, replaces=("w1",))


@pytest.mark.parametrize(
    ("now", "expired"),
    [
        pytest.param(60.0, [], id="within-the-limit"),
        pytest.param(61.5, ["w0"], id="past-the-limit"),
    ],
)
def test_idle_workers_expire_after_idle_s(now: float, expired: list[str]) -> None:
    pool = ready_pool(A0, idle_s=60.0)  # ready (and idle) at t=1
    assert pool.expired(now) == expired


def test_idle_time_counts_from_the_last_task_end_and_busy_workers_never_expire() -> None:
    pool = ready_pool(A0, A1, idle_s=10.0)
    pool.task_started("w0", key("a"))
    pool.task_started("w1", key("b"))
    assert pool.expired(100.0) == [], "busy workers never expire"
    assert pool.task_ended(key("a"), now=100.0) is pool.get("w0")
    assert pool.expired(105.0) == []
    assert pool.expired(111.0) == ["w0"]


def test_starting_workers_do_not_expire_but_get_stuck() -> None:
    pool = WorkerPool(10.0)
    pool.created("w0", A0, now=0.0)
    assert pool.expired(1000.0) == []
    assert pool.stuck(30.0, start_timeout_s=60.0) == []
    assert pool.stuck(61.0, start_timeout_s=60.0) == ["w0"]


def test_gone_returns_the_tasks_it_still_ran() -> None:
    pool = ready_pool(A0)
    pool.task_started("w0", key())
    gone = pool.gone("w0")
    assert gone is not None and gone.tasks == {key()}
    assert pool.running(key()) is None and len(pool) == 0


def test_ready_is_only_a_step_from_starting() -> None:
    pool = ready_pool(A0)
    pool.deleting(["w0"])
    pool.ready("w0", now=2.0)
    worker = pool.get("w0")
    assert worker is not None and worker.phase is WorkerPhase.DELETING


def test_gpu_set_of_a_placement_keeps_the_planned_order() -> None:
    placement = GpuPlacement("node-a", (1, 0), ("GPU-1", "GPU-0"))
    assert gpu_set(placement) == ("node-a", (1, 0))


def test_idle_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="idle_s"):
        WorkerPool(0.0)
