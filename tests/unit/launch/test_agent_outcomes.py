"""`ended_tries`: the executor's reading of a task agent's report."""

from __future__ import annotations

from airflow_fate.launch.agent.messages import AgentState, TaskReport, WireKey, WorkerReport
from airflow_fate.launch.agent.outcomes import TaskOutcome, ended_tries
from airflow_fate.launch.types import EventKind, TaskKey

WHERE = "worker pod p on node n"


def _key(task: str) -> TaskKey:
    return TaskKey("dag", task, "run", 1)


def _state(*reports: TaskReport) -> AgentState:
    return AgentState(
        pod="p",
        node="n",
        gpu_indices=[0],
        gpu_uuids=["GPU-0"],
        worker=WorkerReport(alive=True),
        tasks=list(reports),
    )


def _report(task: str, *, running: bool, exit_code: int | None = None) -> TaskReport:
    return TaskReport(
        key=WireKey.of(_key(task)), pid=7, running=running, exit_code=exit_code, seconds=1.0
    )


def test_running_tries_have_no_outcome_and_the_others_one_each_in_key_order() -> None:
    state = _state(
        _report("c", running=False, exit_code=0),
        _report("b", running=True),
        _report("a", running=False, exit_code=3),
    )
    got = ended_tries([_key("c"), _key("b"), _key("a"), _key("d")], state, WHERE)
    assert got == [
        TaskOutcome(_key("a"), EventKind.FAILED, f"task process in {WHERE} exited with code 3"),
        TaskOutcome(_key("c"), EventKind.SUCCEEDED),
        TaskOutcome(_key("d"), EventKind.FAILED, f"{WHERE} no longer knows the task", False),
    ]


def test_a_try_killed_by_a_signal_fails_with_its_code() -> None:
    [outcome] = ended_tries([_key("a")], _state(_report("a", running=False, exit_code=-9)), WHERE)
    assert outcome.kind is EventKind.FAILED
    assert outcome.reason.endswith("exited with code -9")
    assert outcome.reported


def test_reports_of_tries_not_tracked_are_ignored() -> None:
    state = _state(_report("other", running=False, exit_code=0))
    assert ended_tries([], state, WHERE) == []
