"""Building the official client's ``ApiClient`` from a kubeconfig, in-cluster, or a host.

Kept apart so the launcher takes a factory and tests can point it at the fake API server
(`api_client_for_host`) while production uses a kubeconfig or the pod's service account.
"""

from __future__ import annotations

import os

import urllib3
from kubernetes import client, config  # type: ignore[import-untyped,import-not-found,unused-ignore]


def _without_hidden_retries(configuration: client.Configuration) -> client.Configuration:
    """Turn off urllib3's own retries.

    By default urllib3 retries idempotent calls itself and *sleeps* for a 429/503
    ``Retry-After`` inside the call, invisibly blocking the scheduler loop and
    multiplying our own backoff. All retrying is done by `ApiCaller` and the launcher.
    """
    configuration.retries = urllib3.Retry(
        total=0, redirect=0, respect_retry_after_header=False, raise_on_status=False
    )
    return configuration


def api_client_for_host(host: str) -> client.ApiClient:
    """An unauthenticated client for ``host`` (``http://127.0.0.1:PORT`` in tests)."""
    configuration = _without_hidden_retries(client.Configuration())
    configuration.host = host
    return client.ApiClient(configuration)


def load_api_client(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """A client from ``kubeconfig`` (or ``$KUBECONFIG``/``~/.kube/config``), else in-cluster.

    In-cluster configuration is used only when no kubeconfig is given and the pod's
    service-account environment is present, which is how a scheduler pod finds its API.
    """
    configuration = _without_hidden_retries(client.Configuration())
    # Read $KUBECONFIG now: the client snapshots it once, at import time.
    path = kubeconfig or os.environ.get("KUBECONFIG") or None
    if path is None and "KUBERNETES_SERVICE_HOST" in os.environ:
        config.load_incluster_config(client_configuration=configuration)
    else:
        config.load_kube_config(
            config_file=path, context=context, client_configuration=configuration
        )
    return client.ApiClient(configuration)
