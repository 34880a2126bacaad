"""Discovering the GPU inventory from a live cluster (nodes + inventory ConfigMap).

Reads every node (GPU Feature Discovery labels) and the inventory ConfigMap (per-GPU
UUID/index/PCI bus id and cluster facts), then builds the `Inventory` with the pure
`inventory_from_nodes`. Needs ``list nodes`` (ClusterRole) and ``get configmaps`` (Role)
as granted in ``k8s/base``.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client  # type: ignore[import-untyped,import-not-found,unused-ignore]

from airflow_fate.errors import InputError
from airflow_fate.launch.inventory import Inventory, inventory_from_nodes
from airflow_fate.launch.kubernetes.api import ApiCaller, KubernetesApiError

DEVICES_KEY = "devices.yaml"
CLUSTER_KEY = "cluster.yaml"


def discover_inventory(
    api_client: client.ApiClient,
    caller: ApiCaller,
    *,
    namespace: str,
    configmap: str = "airflow-fate-inventory",
    request_timeout_s: float = 30.0,
) -> Inventory:
    """The cluster's GPU inventory.

    Args:
        api_client: an API client.
        caller: retries 429/5xx with backoff.
        namespace: namespace of the inventory ConfigMap.
        configmap: its name; keys ``devices.yaml`` and ``cluster.yaml``.
        request_timeout_s: per-call timeout.

    Raises:
        InputError: the ConfigMap is missing or malformed, or labels disagree with it.
        KubernetesApiError: the API refused (e.g. RBAC) or stayed unavailable.
    """
    core = client.CoreV1Api(api_client)
    source = f"configmap {namespace}/{configmap}"
    try:
        cm_response = caller.call(
            f"read {source}",
            lambda: core.read_namespaced_config_map(
                configmap, namespace, _request_timeout=request_timeout_s, _preload_content=False
            ),
        )
    except KubernetesApiError as exc:
        if exc.status == 404:
            raise InputError(source, "", "not found") from None
        raise
    data: dict[str, Any] = json.loads(cm_response.data).get("data") or {}
    for key in (DEVICES_KEY, CLUSTER_KEY):
        if key not in data:
            raise InputError(source, f"data.{key}", "missing")
    nodes_response = caller.call(
        "list nodes",
        lambda: core.list_node(_request_timeout=request_timeout_s, _preload_content=False),
    )
    nodes = json.loads(nodes_response.data).get("items") or []
    return inventory_from_nodes(nodes, data[DEVICES_KEY], data[CLUSTER_KEY], source)
