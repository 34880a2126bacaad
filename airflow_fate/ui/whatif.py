"""The "what if" panel's data: a DAG run replayed under each policy (`airflow_fate.replay`).

Inside the API server: Airflow's tables through the server's own engine, the ``fate_*``
tables through the monitor's store, cluster and models from ``[fate]`` (the files the
executor plans with). Runs of other DAGs that shared the GPUs are replayed too, and
named only to callers who may read those DAGs. Computed on request (every policy
re-plans the runs: seconds, not milliseconds), which is why the run tab loads the
panel after the Gantt.
"""

from __future__ import annotations

from collections.abc import Callable

from airflow import settings
from airflow.configuration import conf
from fastapi import HTTPException, status

from airflow_fate.errors import InputError
from airflow_fate.replay.config import replay_inputs
from airflow_fate.replay.reading import RunReader
from airflow_fate.replay.report import ReplayReport
from airflow_fate.replay.whatif import ReplayRequest, what_if
from airflow_fate.ui.source import monitor_source


class NotReplayedError(Exception):
    """The run exists but cannot be replayed; the message says why (for the panel)."""


def run_replay(dag_id: str, run_id: str, readable: Callable[[str], bool]) -> ReplayReport:
    """The replay of one run under every policy.

    Raises:
        HTTPException: 404 when the run is unknown or has no FATE placements.
        NotReplayedError: the run cannot be replayed (still running, failed, no inputs).
    """
    source = monitor_source()
    engine = settings.engine
    if engine is None or not source.ready():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no FATE placements stored yet")
    reader = RunReader(engine, source.store)
    if not reader.has_run(dag_id, run_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"DAG {dag_id!r} has no run {run_id!r}")
    try:
        inputs = replay_inputs(_get)
        return what_if(reader, ReplayRequest((dag_id,), run_id), inputs, readable)
    except InputError as exc:
        raise NotReplayedError(exc.reason if exc.source.startswith("--") else str(exc)) from None


def _get(section: str, key: str) -> str | None:
    value: str | None = conf.get(section, key, fallback=None)
    return value
