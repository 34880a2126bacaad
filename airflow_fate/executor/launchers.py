"""The executor's launcher plug-in point: one interface, a local and a Kubernetes backend.

Both take the Kubernetes launcher's messages (`LaunchRequest` with a `GpuPlacement` in,
`LaunchEvent` out), so the executor does not care where a stage runs. A backend is built
here from `FateSettings` in `FateExecutor.start` (never at import: the API server builds
executors it never starts, and the Kubernetes client is heavy).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

from airflow_fate.domain.cluster import Cluster
from airflow_fate.errors import InputError
from airflow_fate.executor.settings import FateSettings
from airflow_fate.launch.kubernetes.types import GpuPlacement, LaunchEvent, LaunchRequest, TaskKey


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


def build_launcher(
    settings: FateSettings, cluster: Cluster, run_dir: Path
) -> tuple[StageLauncher, PlacementMapper]:
    """The configured backend and how to express placements for it.

    Raises:
        InputError: when the backend's own files are missing or invalid.
    """
    if settings.launcher == "kubernetes":
        return _kubernetes(settings)
    from airflow_fate.executor.local_launcher import LocalTaskLauncher
    from airflow_fate.launch.inventory import bind, discover, load_inventory

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
    return launcher, local_placement(cluster)


def _kubernetes(settings: FateSettings) -> tuple[StageLauncher, PlacementMapper]:
    if settings.kubernetes_settings is None or settings.kubernetes_devices is None:
        raise InputError(
            "[fate]",
            "kubernetes_settings",
            "launcher = kubernetes needs kubernetes_settings (launcher.yaml) and "
            "kubernetes_devices (devices.yaml)",
        )
    from airflow_fate.launch.kubernetes.inventory import load_inventory
    from airflow_fate.launch.kubernetes.launcher import KubernetesLauncher
    from airflow_fate.launch.kubernetes.settings import load_settings

    inventory = load_inventory(settings.cluster, settings.kubernetes_devices)
    launcher = KubernetesLauncher(load_settings(settings.kubernetes_settings))
    return launcher, inventory.placement
