"""The projected demand of a model: what it asks of the copies, and what a copy is worth."""

from __future__ import annotations

import pytest

from airflow_fate.planner.fate.supply import MAX_DEMAND, Copy, Need, demand_cost, projected_needs

HOT_RATE = 5.0
"""Stages a second: a bottleneck model of the real-dag suite at load 0.9."""
RUN_S = 2.0
COLD_S = 50.0
"""A cold option: a GPU group free soon plus a 70B load from a node's disk."""


def hot(keep_rate: bool) -> list[Need]:
    return projected_needs(HOT_RATE, RUN_S, COLD_S, 0.0, 60.0, 0.5, keep_rate)


@pytest.mark.parametrize("keep_rate", [True, False])
def test_a_hot_models_projection_is_capped_at_max_demand_needs(keep_rate: bool) -> None:
    needs = hot(keep_rate)
    assert len(needs) == MAX_DEMAND
    assert [n.ready_at for n in needs] == sorted(n.ready_at for n in needs)
    assert needs[-1].ready_at < 60.0


def test_capped_needs_ask_what_the_projected_stages_would() -> None:
    expected = HOT_RATE * 60.0
    needs = hot(keep_rate=True)
    assert sum(n.run_s for n in needs) == pytest.approx(expected * RUN_S)
    assert sum(n.discount for n in needs) == pytest.approx(expected * 0.5)
    assert sum(n.run_s for n in hot(keep_rate=False)) == pytest.approx(MAX_DEMAND * RUN_S)


def test_a_cool_models_projection_is_the_same_either_way() -> None:
    cool = [projected_needs(0.2, RUN_S, COLD_S, 10.0, 60.0, 0.5, k) for k in (True, False)]
    assert cool[0] == cool[1]
    assert len(cool[0]) == 12
    assert cool[0][0].ready_at == pytest.approx(12.5)


def test_no_rate_or_no_window_projects_nothing() -> None:
    assert projected_needs(0.0, RUN_S, COLD_S, 0.0, 60.0, 0.5, True) == []
    assert projected_needs(HOT_RATE, RUN_S, COLD_S, 0.0, 0.0, 0.5, True) == []


def test_a_second_copy_of_a_hot_model_is_worth_far_more_when_the_rate_is_kept() -> None:
    """One copy free now; a second would be free in 10 s (a load from host memory); a
    stage with neither waits 50 s for a GPU and a load from disk.

    Cut to 32 single stages over 60 s, the projection fits one copy and the second saves
    each stage a few seconds at most; at the real rate the queue on one copy grows until
    stages give up and load cold, and the second copy halves it.
    """
    one = [Copy((0, 1), 0, 0.0)]
    two = [*one, Copy((2, 3), 1, 10.0)]
    saved = {
        k: demand_cost(hot(k), one, 0.0) - demand_cost(hot(k), two, 0.0) for k in (True, False)
    }
    assert saved[True] > 10 * saved[False] > 0.0
