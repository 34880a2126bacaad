"""The Kubernetes backend of the executor: stage tasks as pods (``[fate] launcher = kubernetes``).

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
from airflow_fate.launch.kubernetes.settings import LauncherSettings, load_settings
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
    from airflow_fate.launch.kubernetes.launcher import KubernetesLauncher  # the client

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
