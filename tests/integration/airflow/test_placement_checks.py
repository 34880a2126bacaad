"""The demo tests' "children reuse their parent's warm GPU" rule, on hand-made rows.

The rule is only as good as its notion of a free, still-warm parent GPU; these cases
pin it down without running Airflow.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from airflow_fate.executor.store import PlacementRow
from airflow_fate.launch.types import TaskKey
from tests.integration.airflow.conftest import check_children_follow_parents

T0 = datetime(2026, 11, 28, tzinfo=UTC)
LLM = "smollm2-135m-instruct"
ENCODER = "all-minilm-l6-v2"
UPSTREAM = {"d": {"answer": [], "judge": ["answer"], "other": []}}


def row(
    task: str, gpu: int, start_s: float, run_s: float, model: str = LLM, warm: bool = False
) -> PlacementRow:
    return PlacementRow(
        key=TaskKey("d", task, "r1", 1, -1),
        policy="fate",
        node="local",
        gpus=(gpu,),
        model=model,
        predicted={},
        state="success",
        pid=None,
        start=T0 + timedelta(seconds=start_s),
        end=T0 + timedelta(seconds=start_s + run_s),
        run_s=run_s,
        measured={"model_warm": warm},
    )


def test_a_child_on_its_parents_gpu_passes() -> None:
    assert (
        check_children_follow_parents([row("answer", 1, 0, 5), row("judge", 1, 6, 5)], UPSTREAM)
        == 1
    )


def test_a_child_warm_on_another_gpu_passes() -> None:
    rows = [row("answer", 1, 0, 5), row("judge", 2, 6, 5, warm=True)]
    assert check_children_follow_parents(rows, UPSTREAM) == 1


def test_a_child_cold_elsewhere_while_its_parents_gpu_was_warm_and_free_fails() -> None:
    with pytest.raises(AssertionError, match="loaded its model cold"):
        check_children_follow_parents([row("answer", 1, 0, 5), row("judge", 2, 6, 5)], UPSTREAM)


def test_another_model_between_parent_and_child_may_have_evicted_it() -> None:
    rows = [row("answer", 1, 0, 5), row("other", 1, 5.5, 0.4, model=ENCODER), row("judge", 2, 6, 5)]
    assert check_children_follow_parents(rows, UPSTREAM) == 0


def test_the_same_model_between_parent_and_child_keeps_it_warm() -> None:
    rows = [row("answer", 1, 0, 5), row("other", 1, 5.2, 0.5), row("judge", 2, 6, 5)]
    with pytest.raises(AssertionError, match="loaded its model cold"):
        check_children_follow_parents(rows, UPSTREAM)


def test_a_parent_gpu_taken_while_the_child_ran_was_not_free() -> None:
    rows = [row("answer", 1, 0, 5), row("other", 1, 6, 5), row("judge", 2, 6, 5)]
    assert check_children_follow_parents(rows, UPSTREAM) == 0
