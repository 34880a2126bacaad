"""``demo --compare``'s contenders, table and JSON, from results built by hand.

The end-to-end run of both executors is in the campaign tier
(``tests/integration/airflow/test_demo_compare.py``); these pin what it prints and
writes.
"""

from __future__ import annotations

import pytest

from airflow_fate.demo.compare import (
    ContenderResult,
    contenders,
    result_document,
    table_lines,
)
from airflow_fate.demo.environment import DagRunState
from airflow_fate.errors import InputError


def _result(
    label_index: int, batch_s: list[float], *, failed_task: bool = False
) -> ContenderResult:
    contender = contenders("fate")[label_index]
    runs = [(i + 1, DagRunState("d", f"r{i}", "success")) for i in range(len(batch_s))]
    return ContenderResult(
        contender,
        batch_s=batch_s,
        runs=runs,
        tasks=4,
        tasks_succeeded=3 if failed_task else 4,
        stages=4,
        model_loads=4 if label_index == 0 else 2,
        load_s=8.0 if label_index == 0 else 3.5,
        expected_batches=len(batch_s),
        parallelism=8,
    )


def test_local_executor_comes_first_then_one_row_per_policy() -> None:
    labels = [c.label for c in contenders("fate, round-robin")]
    assert labels == ["LocalExecutor", "FateExecutor (fate)", "FateExecutor (round-robin)"]
    assert [c.slug for c in contenders("fate")] == ["local", "fate-fate"]


@pytest.mark.parametrize("policies", ["no-such-policy", " , "])
def test_bad_policies_are_refused(policies: str) -> None:
    with pytest.raises(InputError, match="--policy"):
        contenders(policies)


def test_table_and_json_give_speedups_against_local() -> None:
    local, fate = _result(0, [30.0, 20.0]), _result(1, [15.0, 10.0])
    lines = table_lines([local, fate])
    assert all(len(line) < 80 for line in lines)
    assert lines[2].split()[:2] == ["LocalExecutor", "50.0"] and lines[2].endswith("1.00x")
    assert "15.0 + 10.0" in lines[3] and lines[3].endswith("2.00x")

    doc = result_document([local, fate], ["d"], 2)
    assert doc["batches"] == 2 and doc["parallelism"] == 8
    rows = doc["rows"]
    assert [r["speedup"] for r in rows] == [1.0, 2.0]
    assert rows[1]["model_loads"] == 2 and rows[1]["load_s"] == 3.5 and rows[1]["ok"]
    assert rows[1]["runs"][1] == {"batch": 2, "dag_id": "d", "run_id": "r1", "state": "success"}


def test_a_failed_contender_shows_failed_and_no_speedup() -> None:
    local, fate = _result(0, [30.0]), _result(1, [10.0], failed_task=True)
    lines = table_lines([local, fate])
    assert "failed" in lines[3] and lines[3].rstrip().endswith("-")
    doc = result_document([local, fate], ["d"], 1)
    assert doc["rows"][1]["ok"] is False and doc["rows"][1]["speedup"] is None


def test_a_failed_reference_gives_no_speedups() -> None:
    local, fate = _result(0, [30.0], failed_task=True), _result(1, [10.0])
    assert [r["speedup"] for r in result_document([local, fate], ["d"], 1)["rows"]] == [None, None]
