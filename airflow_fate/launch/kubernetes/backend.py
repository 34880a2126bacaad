"""The Kubernetes backend of the executor (``[fate] launcher = kubernetes``).

Two modes (``[fate] kubernetes_mode``): ``worker-pods`` (default) runs tasks on long-lived
GPU worker pods that keep models and prefix KV (`worker_pods`); ``pod-per-stage`` runs
each task try in a pod of its own (`launcher`), as Airflow's KubernetesExecutor does.

Registered by name in `airflow_fate.launch.backends`, which imports this module only
when the backend is chosen, so the executor never imports this package itself. The
``kubernetes`` client is imported only once the settings check out.
"""

from __future__ import annotations

import time
from pathlib import Path

from airflow_fate.errors import InputError
from airflow_fate.launch.backends import BackendSettings, LauncherSetup, cluster_file
from airflow_fate.launch.inventory import Inventory, load_inventory
from airflow_fate.launch.kubernetes.settings import GpuMode, LauncherSettings, load_settings
from airflow_fate.state.hosting import Hosting


def build_kubernetes(settings: BackendSettings, run_dir: Path) -> LauncherSetup:
    """The pod launcher, with the inventory from files or discovered from the cluster.

    ``run_dir`` is unused: pods keep their state in the API, not on this machine.

    Raises:
        InputError: ``kubernetes_settings`` is unset, or a file is missing or invalid.
        KubernetesApiError: discovery could not read nodes or the inventory ConfigMap.
    """
    del run_dir
    if settings.kubernetes_settings is None:
        raise InputError(
            "[fate]",
            "kubernetes_settings",
            "launcher = kubernetes needs kubernetes_settings (launcher.yaml)",
        )
    launcher_settings = load_settings(settings.kubernetes_settings)
    mode = settings.kubernetes_mode
    if mode not in ("worker-pods", "pod-per-stage"):
        raise InputError("[fate]", "kubernetes_mode", f"unknown mode {mode!r}")
    if mode == "worker-pods" and launcher_settings.pod.gpu_mode is GpuMode.DEVICE_PLUGIN:
        raise InputError(
            str(settings.kubernetes_settings),
            "pod.gpu_mode",
            "worker pods hold the GPUs the planner chose, which 'device-plugin' cannot "
            "promise: use 'dra' or 'env-pin', or [fate] kubernetes_mode = pod-per-stage",
        )
    if settings.kubernetes_devices is None:  # discovery (`discovers_inventory`)
        inventory = _discover(settings, launcher_settings)
    else:
        inventory = load_inventory(cluster_file(settings), settings.kubernetes_devices)
    if mode == "pod-per-stage":
        from airflow_fate.launch.kubernetes.launcher import KubernetesLauncher  # the client

        return LauncherSetup(
            KubernetesLauncher(launcher_settings),
            inventory.placement,
            inventory.cluster,
            hosting=Hosting.of("pod-per-stage", inventory.cluster),
        )
    from airflow_fate.launch.kubernetes.worker_pods import WorkerPodLauncher  # the client

    launcher = WorkerPodLauncher(
        launcher_settings,
        inventory,
        stage_timeout_s=settings.stage_timeout_s,
        worker_idle_s=settings.worker_idle_s,
    )
    # With ``worker.prestart`` the launcher starts a single-GPU pod per GPU with the
    # scheduler, so the state begins with them; without it the first stage on each GPU
    # set pays a pod start.
    hosting = Hosting.of(
        "worker-pods",
        inventory.cluster,
        worker_idle_s=settings.worker_idle_s,
        prestart=launcher_settings.worker.prestart,
    )
    return LauncherSetup(launcher, inventory.placement, inventory.cluster, hosting=hosting)


def _discover(settings: BackendSettings, launcher_settings: LauncherSettings) -> Inventory:
    """The inventory from GPU Feature Discovery labels and the inventory ConfigMap."""
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
