"""The monitor's JSON API (mounted under ``/fate/api``), every route authenticated.

- ``GET /fate/api/gpus``: the GPU map (`schemas.ClusterMap`);
- ``GET /fate/api/runs/{dag_id}/{run_id}/placements``: a DAG run's tries in start
  order (`schemas.RunPlacements`);
- ``GET /fate/api/runs/{dag_id}/{run_id}/tasks/{task_id}/decision``: one try's decision
  record (`schemas.Decision`; ``map_index`` default -1, ``try_number`` default latest);
- ``GET /fate/api/runs/{dag_id}/{run_id}/replay``: the run replayed under each policy
  against what was measured (`replay.report.ReplayReport`; 409 when it cannot be).

Handlers are plain ``def``: the store uses blocking SQLAlchemy, so FastAPI runs them in
its thread pool instead of on the event loop.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from airflow_fate.replay.report import ReplayReport
from airflow_fate.ui.auth import READ_RUN, READ_TASK_INSTANCE, VIEW_CLUSTER, ReadableDags
from airflow_fate.ui.cluster_map import cluster_map, shapes_from_rows
from airflow_fate.ui.decision import decision
from airflow_fate.ui.schemas import ClusterMap, Decision, RunPlacements, placement
from airflow_fate.ui.source import monitor_source, now
from airflow_fate.ui.whatif import NotReplayedError, run_replay

router = APIRouter(prefix="/api", tags=["FATE monitor"])

MapIndex = Annotated[int, Query(ge=-1)]
TryNumber = Annotated[int | None, Query(ge=0)]


def gpu_map(readable: ReadableDags) -> ClusterMap:
    """Build the GPU map for a caller who may read the DAGs ``readable`` accepts."""
    source = monitor_source()
    state = source.state()
    shapes = source.shapes()
    origin = "cluster"
    if shapes is None:
        shapes = shapes_from_rows(state.residency, state.prefixes, state.open_placements)
        origin = "store"
    return cluster_map(
        shapes,
        state.residency,
        state.prefixes,
        state.open_placements,
        readable,
        source=origin,
        now=now(),
    )


def run_placements(dag_id: str, run_id: str) -> RunPlacements:
    rows = monitor_source().run_placements(dag_id, run_id)
    return RunPlacements(dag_id=dag_id, run_id=run_id, placements=[placement(r) for r in rows])


def task_decision(
    dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int | None
) -> Decision:
    rows = [
        r
        for r in monitor_source().run_placements(dag_id, run_id)
        if r.key.task_id == task_id and r.key.map_index == map_index
    ]
    found = decision(rows, try_number)
    if found is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"no FATE placement of {dag_id}/{run_id}/{task_id} (map index {map_index})",
        )
    return found


@router.get("/gpus", dependencies=[VIEW_CLUSTER])
def get_gpus(readable: ReadableDags) -> ClusterMap:
    """The cluster's GPUs: resident models, prefix-KV entries and the stage running now."""
    return gpu_map(readable)


@router.get("/runs/{dag_id}/{run_id}/placements", dependencies=[READ_RUN])
def get_run_placements(dag_id: str, run_id: str) -> RunPlacements:
    """Every placement of one DAG run (one row per task-instance try)."""
    return run_placements(dag_id, run_id)


@router.get("/runs/{dag_id}/{run_id}/tasks/{task_id}/decision", dependencies=[READ_TASK_INSTANCE])
def get_decision(
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: MapIndex = -1,
    try_number: TryNumber = None,
) -> Decision:
    """Why this try went to its GPUs: breakdown, future terms, runner-up, measured times."""
    return task_decision(dag_id, run_id, task_id, map_index, try_number)


@router.get("/runs/{dag_id}/{run_id}/replay", dependencies=[READ_RUN])
def get_run_replay(dag_id: str, run_id: str, readable: ReadableDags) -> ReplayReport:
    """What the run would have cost under each policy (runs of other DAGs that shared
    the GPUs are named only if the caller may read them)."""
    try:
        return run_replay(dag_id, run_id, readable)
    except NotReplayedError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
