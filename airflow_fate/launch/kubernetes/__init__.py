"""Kubernetes launcher: stages as pods pinned to the planner's node and GPUs.

This package is the only place that imports the ``kubernetes`` client, and only its
client-facing modules do (``api``, ``client``, ``watcher``, ``launcher``, ``discovery``).
The messages it takes and returns are the neutral ones of `airflow_fate.launch.types`,
and its inventory is `airflow_fate.launch.inventory`. The pure parts -- `settings`,
`naming`, `podspec`, `states`, `retry`, `placement` -- import without the client, so
importing this package (and the names re-exported here) never needs ``kubernetes``
installed. Import `airflow_fate.launch.kubernetes.launcher.KubernetesLauncher` where the
client exists; the executor reaches it only through `airflow_fate.launch.backends`.
"""

from __future__ import annotations

from airflow_fate.launch.kubernetes.podspec import StageObjects, build_stage_objects
from airflow_fate.launch.kubernetes.settings import (
    GpuMode,
    LauncherSettings,
    PodSettings,
    RetrySettings,
    load_settings,
)

__all__ = [
    "GpuMode",
    "LauncherSettings",
    "PodSettings",
    "RetrySettings",
    "StageObjects",
    "build_stage_objects",
    "load_settings",
]
