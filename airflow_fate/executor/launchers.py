"""The executor's launcher plug-in point: one interface, a local and a Kubernetes backend.

Both take the Kubernetes launcher's messages (`LaunchRequest` with a `GpuPlacement` in,
`LaunchEvent` out), so the executor does not care where a stage runs. A backend is built
here from `FateSettings` in `FateExecutor.start` (never at import: the API server builds
executors it never starts, and the Kubernetes client is heavy).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.loaders import load_cluster
from airflow_fate.errors import InputError
from airflow_fate.executor.settings import FateSettings, cluster_file
from airflow_fate.launch.kubernetes.types import GpuPlacement, LaunchEvent, LaunchRequest, TaskKey
from airflow_fate.state.hosting import Hosting

if TYPE_CHECKING:
    from airflow_fate.launch.kubernetes.inventory import Inventory
    from airflow_fate.launch.kubernetes.settings import LauncherSettings


class StageLauncher(Protocol):
    """Starts stage tasks where the planner put them and reports what happened."""

    def start(self) -> None: ...

    def launch(self, request: LaunchRequest) -> None: ...

    def poll(self, timeout_s: float = 0.0) -> list[LaunchEvent]: ...

    def cancel(self, key: TaskKey) -> None: ...

    def adopt(self, keys: Iterable[TaskKey], namespace: str | None = None) -> list[TaskKey]: ...

    def close(self) -> None: ...


class PlacementMapper(Protocol):
    """Global GPU indices of the planner -> the launcher's `GpuPlacement`."""

    def __call__(self, gpus: Sequence[int], /) -> GpuPlacement: ...


def local_placement(cluster: Cluster) -> PlacementMapper:
    """Node name and node-local indices (the local launcher binds devices itself)."""

    def mapper(gpus: Sequence[int]) -> GpuPlacement:
        refs = [cluster.gpus[g] for g in gpus]
        return GpuPlacement(
            node=cluster.nodes[refs[0].node].name, gpu_indices=tuple(r.local for r in refs)
        )

    return mapper


@dataclass(frozen=True)
class LauncherSetup:
    """The configured backend, how to express placements for it, and the cluster it serves.

    The cluster comes from the launcher's side because the Kubernetes launcher may
    discover it from the API; the planner is then built on exactly what was discovered.
    """

    launcher: StageLauncher
    placement: PlacementMapper
    cluster: Cluster
    hosting: Hosting
    """What stays on a GPU after a stage and what a pod costs to start: the local
    launcher's long-lived device workers keep models and prefix KV, a pod per stage
    keeps nothing."""


def build_launcher(settings: FateSettings, run_dir: Path) -> LauncherSetup:
    """The configured backend, its placement mapper and the cluster.

    Raises:
        InputError: when the backend's own files are missing or invalid, or discovery
            finds no usable inventory.
        KubernetesApiError: discovery could not read nodes or the inventory ConfigMap.
    """
    if settings.launcher == "kubernetes":
        return _kubernetes(settings)
    from airflow_fate.executor.local_launcher import LocalTaskLauncher
    from airflow_fate.launch.inventory import bind, discover, load_inventory

    cluster = load_cluster(cluster_file(settings))
    if settings.inventory is not None:
        inventory = load_inventory(settings.inventory)
    else:
        inventory = discover(len(cluster.gpus))
    bindings = bind(cluster, inventory, str(settings.inventory or "discovered devices"))
    launcher = LocalTaskLauncher(
        cluster,
        bindings,
        run_dir,
        models_path=str(settings.models.resolve()),
        stage_timeout_s=settings.stage_timeout_s,
        worker_idle_s=settings.worker_idle_s,
    )
    return LauncherSetup(launcher, local_placement(cluster), cluster, hosting=Hosting())


def _kubernetes(settings: FateSettings) -> LauncherSetup:
    if settings.kubernetes_settings is None:
        raise InputError(
            "[fate]",
            "kubernetes_settings",
            "launcher = kubernetes needs kubernetes_settings (launcher.yaml)",
        )
    from airflow_fate.launch.kubernetes.inventory import load_inventory
    from airflow_fate.launch.kubernetes.launcher import KubernetesLauncher
    from airflow_fate.launch.kubernetes.settings import load_settings

    launcher_settings = load_settings(settings.kubernetes_settings)
    if settings.kubernetes_devices is None:  # discovery (`discovers_inventory`)
        inventory = _discover(settings, launcher_settings)
    else:
        inventory = load_inventory(cluster_file(settings), settings.kubernetes_devices)
    return LauncherSetup(
        KubernetesLauncher(launcher_settings),
        inventory.placement,
        inventory.cluster,
        hosting=Hosting.of("pod-per-stage", inventory.cluster),
    )


def _discover(settings: FateSettings, launcher_settings: LauncherSettings) -> Inventory:
    """The inventory from GPU Feature Discovery labels and the inventory ConfigMap."""
    import time

    from airflow_fate.launch.kubernetes.api import ApiCaller
    from airflow_fate.launch.kubernetes.client import load_api_client
    from airflow_fate.launch.kubernetes.discovery import discover_inventory

    api_client = load_api_client()
    try:
        return discover_inventory(
            api_client,
            ApiCaller(launcher_settings.retry, time.sleep),
            namespace=launcher_settings.pod.namespace,
            configmap=settings.kubernetes_inventory,
            request_timeout_s=launcher_settings.request_timeout_s,
        )
    finally:
        api_client.close()
