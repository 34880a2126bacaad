"""Authentication and authorisation of the monitor: Airflow's own, nothing invented.

Airflow 3 mounts plugin apps without any authentication. Every monitor route therefore
depends on the dependencies Airflow's REST API uses (`airflow.api_fastapi.core_api
.security`), so a caller is who the REST API would say (a JWT bearer token from
``POST /auth/token``, or the ``_token`` cookie the UI's login sets) and may see what the
configured auth manager allows:

- a DAG run's placements and a task's decision: read access to that DAG's runs / task
  instances (`requires_access_dag`, the DAG id taken from the path);
- the GPU map: the "cluster activity" view (`requires_access_view`), and the stage a GPU
  runs now is named only if the caller may read its DAG.

No credential: 401; a bad token: 403; not allowed: 403, exactly as the REST API answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import AccessView, DagAccessEntity
from airflow.api_fastapi.core_api.security import (
    GetUserDep,
    requires_access_dag,
    requires_access_view,
)
from fastapi import Depends

READ_RUN: Any = Depends(requires_access_dag("GET", DagAccessEntity.RUN))
"""Read access to the runs of the DAG named by the ``dag_id`` path parameter."""
READ_TASK_INSTANCE: Any = Depends(requires_access_dag("GET", DagAccessEntity.TASK_INSTANCE))
"""Read access to the task instances of the DAG named by the ``dag_id`` path parameter."""
VIEW_CLUSTER: Any = Depends(requires_access_view(AccessView.CLUSTER_ACTIVITY))
"""The cluster-activity view, the closest Airflow permission to "see the GPUs"."""


def readable_dags(user: GetUserDep) -> Callable[[str], bool]:
    """A predicate: may this user read the DAG with this id?"""
    allowed: set[str] = get_auth_manager().get_authorized_dag_ids(user=user, method="GET")
    return allowed.__contains__


ReadableDags = Annotated[Callable[[str], bool], Depends(readable_dags)]
