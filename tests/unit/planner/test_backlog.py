"""What a copy is worth to a model's whole ready backlog, and how the window uses it."""

from __future__ import annotations

import heapq
from dataclasses import replace
from typing import Any

import pytest

from airflow_fate.planner.fate import Fate, FateConfig
from airflow_fate.planner.fate.backlog import BacklogValue, copy_gain, copy_loss
from tests.conftest import stage
from tests.unit.planner.test_receding import ready_state


def summed_wait(count: int, runs: list[float], free_at: list[float]) -> float:
    """Discrete check: ``count`` stages, all ready at 0, each on the copy that frees first
    (copy i runs a stage in ``runs[i]`` and is free from ``free_at[i]``)."""
    heap = [(t, i) for i, t in enumerate(free_at)]
    heapq.heapify(heap)
    total = 0.0
    for _ in range(count):
        t, i = heapq.heappop(heap)
        total += t
        heapq.heappush(heap, (t + runs[i], i))
    return total


def fluid_wait(count: int, run_s: float, copies: int) -> float:
    return count * count * run_s / (2 * copies)


@pytest.mark.parametrize(
    ("count", "copies", "ready_in", "new_run"),
    [(400, 6, 3.0, 1.2), (400, 6, 20.0, 2.2), (120, 2, 10.0, 1.2), (60, 1, 5.0, 1.0)],
)
def test_the_gain_of_a_copy_matches_a_discrete_queue(
    count: int, copies: int, ready_in: float, new_run: float
) -> None:
    """The closed form against playing the backlog stage by stage (1.2 s warm runs)."""
    run = 1.2
    without = summed_wait(count, [run] * copies, [0.0] * copies)
    with_copy = summed_wait(count, [run] * copies + [new_run], [0.0] * copies + [ready_in])
    assert copy_gain(count, run, copies, ready_in, new_run) == pytest.approx(
        without - with_copy, rel=0.05
    )


def test_a_copy_ready_after_the_backlog_drains_gains_nothing() -> None:
    assert copy_gain(10, 1.0, 2, 5.0, 1.0) == 0.0, "the backlog drains in 5 s"
    assert copy_gain(10, 1.0, 2, 4.0, 1.0) > 0.0


def test_without_a_copy_or_a_backlog_there_is_nothing_to_gain() -> None:
    assert copy_gain(10, 1.0, 0, 0.0, 1.0) == 0.0, "the first copy is the residency term's"
    assert copy_gain(0, 1.0, 2, 0.0, 1.0) == 0.0


def test_the_gain_grows_with_the_backlog_and_shrinks_with_the_wait_for_the_copy() -> None:
    gains = [copy_gain(n, 1.2, 6, 3.0, 1.2) for n in (50, 100, 200, 400)]
    assert gains == sorted(gains) and gains[0] > 0
    later = [copy_gain(400, 1.2, 6, t, 1.2) for t in (0.0, 10.0, 40.0, 79.0)]
    assert later == sorted(later, reverse=True)
    assert copy_gain(400, 1.2, 6, 0.0, 1.2) == pytest.approx(
        fluid_wait(400, 1.2, 6) - fluid_wait(400, 1.2, 7)
    ), "a copy ready now is one more copy from the start"


def test_losing_a_copy_costs_the_rise_in_summed_wait() -> None:
    assert copy_loss(400, 1.2, 6) == pytest.approx(
        fluid_wait(400, 1.2, 5) - fluid_wait(400, 1.2, 6)
    )
    assert copy_loss(400, 1.2, 1) == 0.0, "the only copy: the eviction term prices a cold load"
    assert copy_loss(0, 1.2, 6) == 0.0


FILLER = {
    "weights_gib": 70.0,
    "kv_bytes_per_token": 65536,
    "prefill_tokens_per_s": 20000,
    "decode_tokens_per_s": 2000,
}
SHORT: dict[str, Any] = {"output_tokens": 5, "max_shards": 1}


def test_a_load_is_charged_for_the_backlogged_copies_it_evicts() -> None:
    """``filler`` on GPUs 0 and 1 with 20 ready stages: loading mid-lm onto GPU 1 evicts
    one of its two copies, and the 20 stages then drain through one."""
    state, _ = ready_state(
        [*(stage(f"f{i}", "filler", **SHORT) for i in range(20)), stage("m", "mid-lm", **SHORT)],
        [("n0", "big", 2)],
        (("filler", (0,)), ("filler", (1,))),
        filler=FILLER,
    )
    snap = state.snapshot()
    value = BacklogValue(snap, {"filler": 1.0, "mid-lm": 0.1})
    assert value.copies("filler") == 2
    term = value.load_term("mid-lm", (1,), 100, ready_in_s=0.6, run_s=0.1)
    assert term == pytest.approx(copy_loss(20, 1.0, 2)), "mid-lm has one stage: no gain"


def test_the_window_opens_a_copy_that_its_own_stages_never_justify() -> None:
    """14 short mid-lm stages (0.09 s warm) behind one copy and a 0.64 s load onto GPU 1.

    A window of 6 of them sees them done in 0.54 s on the warm GPU, before a new copy's
    first stage, so by itself it never opens one (the same case as
    `test_the_window_sees_enough_of_a_hot_models_queue_to_open_a_copy` in
    test_receding.py). Valued against all 14, the copy pays: the second GPU loads now.
    Future terms are off so only the window's schedule and the backlog decide.
    """
    state, cost = ready_state(
        [stage(f"h{i}", "mid-lm", **SHORT) for i in range(14)],
        [("n0", "big", 2)],
        (("mid-lm", (0,)), ("filler", (1,))),
        filler=FILLER,
    )
    config = FateConfig(
        receding_horizon=True, use_solver=False, window_terms=False, window_per_model=6
    )

    def launches(cfg: FateConfig) -> list[tuple[tuple[int, ...], bool]]:
        plan = Fate("fate-rh-greedy", cfg).plan(state.snapshot(), cost)
        return sorted((a.gpus, bool(a.record and a.record.cost.load > 0)) for a in plan.assignments)

    assert launches(config) == [((0,), False)]
    assert launches(replace(config, window_backlog=True)) == [((0,), False), ((1,), True)]
