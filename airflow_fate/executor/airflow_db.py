"""What the executor reads from Airflow's metadata database (scheduler side only).

- the tasks of a DAG run from its serialized DAG (the look-ahead);
- a try's final state and its ``fate_measured`` XCom once its process has ended: the
  process exit code is not the task's outcome (the Task SDK reports the state to the
  API server and may exit 0 after the task failed), the database is;
- a line appended to a task's log file, for tasks the executor refuses to run.

Reads go through sessions of the executor's own engine, never Airflow's scoped session:
the scheduler calls the executor while it holds ORM objects in that session (adoption),
and closing it would detach them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow.models.dagbag import DBDagBag
from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance
from airflow.models.taskinstancehistory import TaskInstanceHistory
from airflow.models.xcom import XComModel
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from airflow_fate.executor.layout import TaskNode
from airflow_fate.launch.types import TaskKey
from airflow_fate.operators.stage import MEASURED_XCOM_KEY


@dataclass(frozen=True, slots=True)
class Outcome:
    """A try's state in the database after its process ended, and what it measured."""

    state: str | None
    end: datetime | None
    measured: dict[str, Any] | None


def dag_run_tasks(
    engine: Engine, dag_bag: DBDagBag, dag_id: str, run_id: str
) -> list[TaskNode] | None:
    """The tasks of the DAG version this run uses, or None when it cannot be found."""
    with Session(engine) as session:
        dag_run = session.scalar(
            select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
        )
        if dag_run is None:
            return None
        dag = dag_bag.get_dag_for_run(dag_run, session)
        if dag is None:
            return None
        return [
            TaskNode(
                task_id=t.task_id,
                upstream=tuple(sorted(t.upstream_task_ids)),
                executor_config=t.executor_config if isinstance(t.executor_config, dict) else None,
            )
            for t in dag.tasks
        ]


FINISHED_RUN_STATES = ("success", "failed")

_RUN_QUERY_CHUNK = 500
"""Runs asked about per query (keeps the ``IN`` lists within every database's limits)."""


def finished_runs(engine: Engine, runs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of ``runs`` (``(dag_id, run_id)``) Airflow has finished, either way."""
    out: set[tuple[str, str]] = set()
    wanted = set(runs)
    ordered = sorted(wanted)
    with Session(engine) as session:
        for i in range(0, len(ordered), _RUN_QUERY_CHUNK):
            chunk = ordered[i : i + _RUN_QUERY_CHUNK]
            rows = session.execute(
                select(DagRun.dag_id, DagRun.run_id).where(
                    DagRun.dag_id.in_({d for d, _ in chunk}),
                    DagRun.run_id.in_({r for _, r in chunk}),
                    DagRun.state.in_(FINISHED_RUN_STATES),
                )
            )
            out.update((d, r) for d, r in rows if (d, r) in wanted)
    return out


def read_outcome(engine: Engine, key: TaskKey) -> Outcome:
    """The try's state (from the task instance, or its history once retried)."""
    with Session(engine) as session:
        ti = session.scalar(
            select(TaskInstance).where(
                TaskInstance.dag_id == key.dag_id,
                TaskInstance.task_id == key.task_id,
                TaskInstance.run_id == key.run_id,
                TaskInstance.map_index == key.map_index,
            )
        )
        state: str | None = None
        end: datetime | None = None
        if ti is not None and ti.try_number == key.try_number:
            state, end = _str(ti.state), ti.end_date
        else:
            old = session.scalar(
                select(TaskInstanceHistory).where(
                    TaskInstanceHistory.dag_id == key.dag_id,
                    TaskInstanceHistory.task_id == key.task_id,
                    TaskInstanceHistory.run_id == key.run_id,
                    TaskInstanceHistory.map_index == key.map_index,
                    TaskInstanceHistory.try_number == key.try_number,
                )
            )
            if old is not None:
                state, end = _str(old.state), old.end_date
        row = session.scalar(
            select(XComModel).where(
                XComModel.dag_id == key.dag_id,
                XComModel.task_id == key.task_id,
                XComModel.run_id == key.run_id,
                XComModel.map_index == key.map_index,
                XComModel.key == MEASURED_XCOM_KEY,
            )
        )
        measured = XComModel.deserialize_value(row) if row is not None else None
    return Outcome(
        state=state,
        end=end.astimezone(UTC) if end is not None else None,
        measured=_this_try(measured, key.try_number),
    )


def _this_try(measured: Any, try_number: int) -> dict[str, Any] | None:
    """The report if ``try_number`` wrote it (an XCom outlives its try until the next
    one starts; a report without a try number predates the field and is kept)."""
    if not isinstance(measured, dict):
        return None
    written_by = measured.get("try_number", try_number)
    return measured if written_by == try_number else None


def append_task_log(base_log_folder: str, log_path: str | None, message: str) -> Path | None:
    """Append ``message`` as an error record to the try's log file (JSON lines)."""
    if not log_path:
        return None
    path = Path(base_log_folder) / log_path
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "timestamp": datetime.now(UTC).isoformat(),
        "level": "error",
        "logger": "airflow_fate.executor",
        "event": message,
    }
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    return path


def _str(state: Any) -> str | None:
    return None if state is None else str(getattr(state, "value", state))
