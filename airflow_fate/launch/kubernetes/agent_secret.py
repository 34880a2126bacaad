"""The Kubernetes Secret that holds the key worker-pod agents check requests with.

The executor creates it on first start (a random 256-bit key) and reads it on every
later start, so a restarted scheduler signs with the key its pods already hold. Worker
pods get it through ``secretKeyRef``; only the scheduler's service account may read it
(``k8s/base``). The value is never logged.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

from airflow_fate.launch.agent.auth import Secret
from airflow_fate.launch.kubernetes import naming
from airflow_fate.launch.kubernetes.api import KubernetesApiError, failure_of
from airflow_fate.launch.kubernetes.pods import StagePodApi
from airflow_fate.launch.kubernetes.retry import ErrorClass
from airflow_fate.launch.kubernetes.worker_podspec import SECRET_KEY

log = logging.getLogger(__name__)


def ensure_agent_secret(pods: StagePodApi, namespace: str, name: str) -> Secret:
    """The agent key from Secret ``namespace/name``, creating the Secret if missing.

    Raises:
        KubernetesApiError: the API refused (e.g. RBAC) or stayed unavailable.
        ValueError: the Secret exists but holds no usable key under ``token``.
    """
    existing = pods.read_secret(namespace, name)
    if existing is not None:
        return _key_of(existing, namespace, name)
    secret = Secret.generate()
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(naming.MANAGED_BY)},
        "type": "Opaque",
        "data": {SECRET_KEY: base64.b64encode(secret.reveal()).decode("ascii")},
    }
    try:
        pods.create_secret(namespace, body)
    except Exception as exc:
        failure = failure_of(exc)
        if failure is None:
            raise
        if failure.error_class is not ErrorClass.CONFLICT:
            raise KubernetesApiError(f"create secret {namespace}/{name}", failure) from None
        existing = pods.read_secret(namespace, name)  # another scheduler made it first
        if existing is None:
            raise KubernetesApiError(f"create secret {namespace}/{name}", failure) from None
        return _key_of(existing, namespace, name)
    log.info("created the agent key Secret %s/%s", namespace, name)
    return secret


def _key_of(secret: dict[str, Any], namespace: str, name: str) -> Secret:
    encoded = (secret.get("data") or {}).get(SECRET_KEY)
    if not encoded:
        raise ValueError(f"Secret {namespace}/{name} has no data.{SECRET_KEY}")
    try:
        return Secret(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"Secret {namespace}/{name}: unusable data.{SECRET_KEY}: {exc}") from None
