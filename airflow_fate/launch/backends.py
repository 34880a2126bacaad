"""The executor's launcher backends: one registry, each built from settings at start.

As Airflow keeps one `BaseExecutor` and each provider brings its own executor in its own
package, the executor here knows only the `TaskLauncher` protocol and `build_backend`.
Each backend registers a builder under its ``[fate] launcher`` name, as a dotted path, so
a backend's module (the Kubernetes one imports the client) is imported only when it is
chosen: the API server builds executors it never starts, and nothing heavy may happen
before `FateExecutor.start`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.loaders import load_cluster
from airflow_fate.errors import InputError
from airflow_fate.launch.types import GpuPlacement, TaskLauncher
from airflow_fate.state.hosting import Hosting


class BackendSettings(Protocol):
    """What a backend reads from the executor's settings (``[fate]``), and no more."""

    @property
    def launcher(self) -> str: ...
    @property
    def cluster(self) -> Path | None: ...
    @property
    def models(self) -> Path: ...
    @property
    def inventory(self) -> Path | None: ...
    @property
    def stage_timeout_s(self) -> float: ...
    @property
    def worker_idle_s(self) -> float: ...
    @property
    def kubernetes_mode(self) -> str: ...
    @property
    def kubernetes_settings(self) -> Path | None: ...
    @property
    def kubernetes_devices(self) -> Path | None: ...
    @property
    def kubernetes_inventory(self) -> str: ...


class PlacementMapper(Protocol):
    """Global GPU indices of the planner -> the launcher's `GpuPlacement`."""

    def __call__(self, gpus: Sequence[int], /) -> GpuPlacement: ...


@dataclass(frozen=True)
class LauncherSetup:
    """The configured backend, how to express placements for it, and the cluster it serves.

    The cluster comes from the launcher's side because the Kubernetes launcher may
    discover it from the API; the planner is then built on exactly what was discovered.
    """

    launcher: TaskLauncher
    placement: PlacementMapper
    cluster: Cluster
    hosting: Hosting
    """What stays on a GPU after a stage and what a pod costs to start: the local
    launcher's long-lived device workers keep models and prefix KV, a pod per stage
    keeps nothing."""


BackendBuilder = Callable[[BackendSettings, Path], LauncherSetup]
"""Builds a backend from the settings and the executor's run directory."""

BACKENDS: dict[str, str] = {
    "local": "airflow_fate.launch.backends:build_local",
    "kubernetes": "airflow_fate.launch.kubernetes.backend:build_kubernetes",
}
"""``[fate] launcher`` name -> ``module:function`` of its `BackendBuilder`."""


def build_backend(settings: BackendSettings, run_dir: Path) -> LauncherSetup:
    """The configured backend, its placement mapper and the cluster (nothing started).

    Raises:
        InputError: an unknown backend, or its own files are missing or invalid, or
            discovery finds no usable inventory.
        KubernetesApiError: discovery could not read nodes or the inventory ConfigMap.
    """
    target = BACKENDS.get(settings.launcher)
    if target is None:
        raise InputError("[fate]", "launcher", f"unknown launcher {settings.launcher!r}")
    module, _, name = target.partition(":")
    builder: BackendBuilder = getattr(importlib.import_module(module), name)
    return builder(settings, run_dir)


def cluster_file(settings: BackendSettings) -> Path:
    """``[fate] cluster``, for every mode that plans on a file.

    Raises:
        InputError: it is unset.
    """
    if settings.cluster is None:
        raise InputError(
            "[fate]", "cluster", "required (set [fate] cluster or AIRFLOW__FATE__CLUSTER)"
        )
    return settings.cluster


def local_placement(cluster: Cluster) -> PlacementMapper:
    """Node name and node-local indices (the local launcher binds devices itself)."""

    def mapper(gpus: Sequence[int]) -> GpuPlacement:
        refs = [cluster.gpus[g] for g in gpus]
        return GpuPlacement(
            node=cluster.nodes[refs[0].node].name, gpu_indices=tuple(r.local for r in refs)
        )

    return mapper


def build_local(settings: BackendSettings, run_dir: Path) -> LauncherSetup:
    """Stage tasks as local processes beside long-lived device workers."""
    from airflow_fate.launch.devices import bind, discover_devices, load_devices
    from airflow_fate.launch.local_tasks import LocalTaskLauncher

    cluster = load_cluster(cluster_file(settings))
    if settings.inventory is not None:
        devices = load_devices(settings.inventory)
    else:
        devices = discover_devices(len(cluster.gpus))
    bindings = bind(cluster, devices, str(settings.inventory or "discovered devices"))
    launcher = LocalTaskLauncher(
        cluster,
        bindings,
        run_dir,
        models_path=str(settings.models.resolve()),
        stage_timeout_s=settings.stage_timeout_s,
        worker_idle_s=settings.worker_idle_s,
    )
    return LauncherSetup(launcher, local_placement(cluster), cluster, hosting=Hosting())
