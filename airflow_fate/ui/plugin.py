"""`FatePlugin`: the monitor as an Airflow 3 plugin (entry point ``airflow.plugins``).

Installing airflow-fate registers it (``setup.cfg``: ``fate = airflow_fate.ui.plugin:
FatePlugin``); no file goes into ``$AIRFLOW_HOME/plugins``. The API server mounts the
app under ``/fate``; the UI shows three external views as same-origin iframes (Airflow
fills ``{DAG_ID}``, ``{RUN_ID}``, ``{TASK_ID}`` and ``{MAP_INDEX}``; hrefs are relative
to Airflow's base URL, so a deployment under a path prefix works):

- navigation: "GPU placement" -> ``fate/ui/gpus``;
- dag-run tab: "GPU placement" -> ``fate/ui/runs/{DAG_ID}/{RUN_ID}``;
- task-instance tab: "Why this GPU" ->
  ``fate/ui/runs/{DAG_ID}/{RUN_ID}/tasks/{TASK_ID}?map_index={MAP_INDEX}``.

The app is built when Airflow loads the plugin (API server start), which is cheap: the
database and the cluster file are first touched by a request.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_fate.ui.app import create_app

URL_PREFIX = "/fate"

EXTERNAL_VIEWS: list[dict[str, Any]] = [
    {
        "name": "GPU placement",
        "href": "fate/ui/gpus",
        "destination": "nav",
        "url_route": "fate-gpus",
    },
    {
        "name": "GPU placement",
        "href": "fate/ui/runs/{DAG_ID}/{RUN_ID}",
        "destination": "dag_run",
        "url_route": "fate-run",
    },
    {
        "name": "Why this GPU",
        "href": "fate/ui/runs/{DAG_ID}/{RUN_ID}/tasks/{TASK_ID}?map_index={MAP_INDEX}",
        "destination": "task_instance",
        "url_route": "fate-why",
    },
]


class FatePlugin(AirflowPlugin):
    """FATE GPU monitor: GPU map, residency, placement Gantt and "why this GPU"."""

    name = "fate"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "FATE monitor"}]
    external_views = EXTERNAL_VIEWS
