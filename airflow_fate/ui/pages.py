"""The monitor's HTML pages (mounted under ``/fate/ui``), shown in Airflow's UI as iframes.

- ``/fate/ui/gpus``: the GPU map (navigation page "GPU placement"), refreshing itself;
- ``/fate/ui/runs/{dag_id}/{run_id}``: the placement Gantt of a DAG run (dag-run tab),
  refreshing itself while a try is open;
- ``/fate/ui/runs/{dag_id}/{run_id}/tasks/{task_id}``: "why this GPU" (task-instance
  tab), ``?map_index=&try_number=``;
- ``/fate/ui/runs/{dag_id}/{run_id}/what-if``: the run replayed under each policy, a
  panel the run page loads into itself once the run is over (it takes seconds).

Server-rendered from the same functions and models as the JSON API, behind the same
dependencies, so an anonymous client gets a 401 page and no data. ``map_index`` is a
string because Airflow leaves ``{MAP_INDEX}`` unreplaced in the tab's URL of an unmapped
task; anything that is not an integer means -1.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.templating import Jinja2Templates

from airflow_fate.replay.summary import summary_lines
from airflow_fate.ui.api import gpu_map, run_placements, task_decision
from airflow_fate.ui.auth import READ_RUN, READ_TASK_INSTANCE, VIEW_CLUSTER, ReadableDags
from airflow_fate.ui.colours import model_colour
from airflow_fate.ui.gantt import gantt
from airflow_fate.ui.source import now
from airflow_fate.ui.whatif import NotReplayedError, run_replay

MOUNT = "/fate"
"""Where the plugin mounts its app; pages link to Airflow's own UI above it."""
REFRESH_S = 5

templates = Jinja2Templates(
    env=Environment(
        loader=PackageLoader("airflow_fate.ui", "templates"),
        autoescape=select_autoescape(["html"]),
    )
)
router = APIRouter(prefix="/ui", include_in_schema=False)


def render(request: Request, name: str, title: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    """Render ``name`` with the paths every page needs (static files, Airflow's UI)."""
    base = str(request.scope.get("root_path", "")).rstrip("/")
    context = {
        "title": title,
        "base": base,
        "airflow": base.removesuffix(MOUNT),
        "refresh_s": REFRESH_S,
        **ctx,
    }
    response: HTMLResponse = templates.TemplateResponse(
        request, name, context, status_code=status, headers={"Cache-Control": "no-store"}
    )
    return response


@router.get("/gpus", dependencies=[VIEW_CLUSTER])
def gpus_page(request: Request, readable: ReadableDags) -> HTMLResponse:
    return render(request, "gpus.html", "GPU placement", cluster=gpu_map(readable))


@router.get("/runs/{dag_id}/{run_id}", dependencies=[READ_RUN])
def run_page(request: Request, dag_id: str, run_id: str) -> HTMLResponse:
    placements = run_placements(dag_id, run_id).placements
    chart = gantt(placements, now())
    models = {p.model: model_colour(p.model) for p in placements if p.model}
    return render(
        request,
        "run.html",
        f"Placement of {dag_id}",
        dag_id=dag_id,
        run_id=run_id,
        chart=chart,
        placements=placements,
        models=dict(sorted(models.items())),
    )


@router.get("/runs/{dag_id}/{run_id}/what-if", dependencies=[READ_RUN])
def what_if_page(
    request: Request, dag_id: str, run_id: str, readable: ReadableDags
) -> HTMLResponse:
    try:
        report, problem = run_replay(dag_id, run_id, readable), None
    except NotReplayedError as exc:
        report, problem = None, str(exc)
    return render(
        request,
        "whatif.html",
        f"What if: {dag_id}",
        dag_id=dag_id,
        run_id=run_id,
        report=report,
        problem=problem,
        lines=summary_lines(report) if report is not None else [],
    )


@router.get("/runs/{dag_id}/{run_id}/tasks/{task_id}", dependencies=[READ_TASK_INSTANCE])
def task_page(
    request: Request,
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: str = "-1",
    try_number: str = "",
) -> HTMLResponse:
    index = _int(map_index)
    index = -1 if index is None else index
    try:
        found = task_decision(dag_id, run_id, task_id, index, _int(try_number))
    except HTTPException as exc:  # no placement: the tab shows its empty state
        if exc.status_code != 404:
            raise
        found = None
    return render(
        request,
        "task.html",
        f"Why {task_id} ran here",
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        map_index=index,
        d=found,
        colour=model_colour(found.placement.model) if found else None,
    )


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None
