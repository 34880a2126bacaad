"""Past runs from the database: Airflow's run and task tables, its serialized DAGs, and
the ``fate_*`` tables. The only replay module that imports Airflow.

Reads go through sessions of the engine passed in (the CLI's own, or the API server's),
never Airflow's scoped session, as `executor.airflow_db` does.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.models.dagbag import DBDagBag
from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance
from airflow.models.taskinstancehistory import TaskInstanceHistory
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from airflow_fate.executor.airflow_db import dag_run_tasks
from airflow_fate.executor.store import FateStore
from airflow_fate.replay.records import QueueKey, RunSource


class RunReader:
    """What the replay reads about DAG runs.

    Args:
        engine: Airflow's metadata database.
        store: the ``fate_*`` tables (on ``engine`` unless ``[fate] store_conn`` says
            otherwise).
    """

    def __init__(self, engine: Engine, store: FateStore) -> None:
        self.engine = engine
        self.store = store
        self.dag_bag = DBDagBag()

    def run_ids(self, dag_id: str, since: datetime | None = None) -> list[str]:
        """Runs of ``dag_id`` that started (at or after ``since``), in start order."""
        query = select(DagRun.run_id).where(DagRun.dag_id == dag_id, DagRun.start_date.is_not(None))
        if since is not None:
            query = query.where(DagRun.start_date >= since)
        with Session(self.engine) as session:
            return list(session.scalars(query.order_by(DagRun.start_date, DagRun.run_id)))

    def has_run(self, dag_id: str, run_id: str) -> bool:
        query = select(DagRun.id).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
        with Session(self.engine) as session:
            return session.scalar(query) is not None

    def sharing(self, since: datetime, until: datetime) -> list[tuple[str, str]]:
        """``(dag_id, run_id)`` of runs with a stage on GPUs between ``since`` and ``until``."""
        rows = self.store.placements_between(since, until)
        return list(dict.fromkeys((r.key.dag_id, r.key.run_id) for r in rows if r.gpus))

    def source(self, dag_id: str, run_id: str) -> RunSource:
        """Everything stored about one run (empty tasks when its DAG cannot be found)."""
        with Session(self.engine) as session:
            start = session.scalar(
                select(DagRun.start_date).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
            )
            queued = _queued(session, dag_id, run_id)
        tasks = dag_run_tasks(self.engine, self.dag_bag, dag_id, run_id) or []
        return RunSource(
            dag_id=dag_id,
            run_id=run_id,
            start=_utc(start),
            tasks=tuple(tasks),
            rows=tuple(self.store.placements_of_run(dag_id, run_id)),
            queued=queued,
        )


def _queued(session: Session, dag_id: str, run_id: str) -> dict[QueueKey, datetime]:
    """When Airflow queued each try of the run (current tries and their history)."""
    out: dict[QueueKey, datetime] = {}
    for model in (TaskInstanceHistory, TaskInstance):
        query = select(model.task_id, model.map_index, model.try_number, model.queued_dttm).where(
            model.dag_id == dag_id, model.run_id == run_id, model.queued_dttm.is_not(None)
        )
        for task_id, map_index, try_number, queued in session.execute(query):
            when = _utc(queued)
            if when is not None:
                out[(task_id, map_index, try_number)] = when
    return out


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
