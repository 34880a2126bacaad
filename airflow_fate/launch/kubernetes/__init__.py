"""Kubernetes launcher: stages as pods pinned to the planner's node and GPUs.

This package is the only place that imports the ``kubernetes`` client, and only its
client-facing modules do (``api``, ``client``, ``watcher``, ``launcher``, ``discovery``).
The pure parts -- `types`, `settings`, `naming`, `podspec`, `states`, `retry`,
`placement`, `inventory` -- import without the client, so importing this package (and the
names re-exported here) never needs ``kubernetes`` installed. Import
`airflow_fate.launch.kubernetes.launcher.KubernetesLauncher` where the client exists.
"""

from __future__ import annotations

from airflow_fate.launch.kubernetes.inventory import GpuDevice, GpuDirectory, Inventory
from airflow_fate.launch.kubernetes.podspec import StageObjects, build_stage_objects
from airflow_fate.launch.kubernetes.settings import (
    GpuMode,
    LauncherSettings,
    PodSettings,
    RetrySettings,
    load_settings,
)
from airflow_fate.launch.kubernetes.types import (
    EventKind,
    GpuPlacement,
    LaunchEvent,
    LaunchRequest,
    TaskKey,
    airflow_task_command,
)

__all__ = [
    "EventKind",
    "GpuDevice",
    "GpuDirectory",
    "GpuMode",
    "GpuPlacement",
    "Inventory",
    "LaunchEvent",
    "LaunchRequest",
    "LauncherSettings",
    "PodSettings",
    "RetrySettings",
    "StageObjects",
    "TaskKey",
    "airflow_task_command",
    "build_stage_objects",
    "load_settings",
]
