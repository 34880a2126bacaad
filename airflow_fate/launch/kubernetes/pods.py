"""The Kubernetes API calls the launcher makes, as plain JSON in and out.

Every response is read raw (``_preload_content=False``) and parsed as JSON, so the
launcher sees exactly what the server sent: no model round trip, and no log mangling
(``kubernetes`` 36.x alters ``read_namespaced_pod_log`` text when it preloads it).

Creation calls make one attempt and raise the client's exception, because the launcher
retries creation on later polls rather than blocking; every other call retries through
`ApiCaller` and raises `KubernetesApiError` when it gives up.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from kubernetes import client  # type: ignore[import-untyped,import-not-found,unused-ignore]

from airflow_fate.launch.kubernetes import naming
from airflow_fate.launch.kubernetes.api import ApiCaller, KubernetesApiError, failure_of
from airflow_fate.launch.kubernetes.podspec import BASE_CONTAINER, RESOURCE_API_VERSION
from airflow_fate.launch.kubernetes.retry import ErrorClass

log = logging.getLogger(__name__)

Json = dict[str, Any]
_GROUP, _VERSION = RESOURCE_API_VERSION.split("/")
_CLAIMS = "resourceclaims"


def _json(response: Any) -> Json:
    data = json.loads(response.data)
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object from the API, got {type(data).__name__}")
    return data


class StagePodApi:
    """Pods and DRA claims of stage pods.

    Args:
        api_client: the client (owned by the caller).
        caller: retry policy for calls other than creation.
        request_timeout_s: client-side timeout of every call.

    Patches are sent as dicts: every supported client sends those as a strategic merge
    patch (36.x picks that content type; 30.x asks for JSON Patch and its REST layer
    rewrites it). ``_content_type`` is avoided because 30.x refuses the argument.
    """

    def __init__(
        self, api_client: client.ApiClient, caller: ApiCaller, request_timeout_s: float
    ) -> None:
        self._core = client.CoreV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)
        self._caller = caller
        self._timeout = request_timeout_s

    # -- creation: one attempt, raw client exceptions ------------------------------------

    def create_claim(self, namespace: str, claim: Json) -> None:
        """Create a ResourceClaim; an existing one (409) from an earlier attempt is fine."""
        try:
            self._custom.create_namespaced_custom_object(
                _GROUP, _VERSION, namespace, _CLAIMS, claim, _request_timeout=self._timeout
            )
        except Exception as exc:
            failure = failure_of(exc)
            if failure is not None and failure.error_class is ErrorClass.CONFLICT:
                return  # names are deterministic: this is our claim
            raise

    def create_pod(self, namespace: str, pod: Json) -> Json:
        """Create a pod and return it as the server stored it."""
        response = self._core.create_namespaced_pod(
            namespace, pod, _request_timeout=self._timeout, _preload_content=False
        )
        return _json(response)

    def create_secret(self, namespace: str, secret: Json) -> None:
        """Create a Secret (one attempt; the caller handles 409)."""
        self._core.create_namespaced_secret(
            namespace, secret, _request_timeout=self._timeout, _preload_content=False
        )

    # -- everything else: retried --------------------------------------------------------

    def read_secret(self, namespace: str, name: str) -> Json | None:
        """The Secret, or ``None`` if it does not exist. Its data is never logged."""
        try:
            response = self._caller.call(
                f"read secret {namespace}/{name}",
                lambda: self._core.read_namespaced_secret(
                    name, namespace, _request_timeout=self._timeout, _preload_content=False
                ),
            )
        except KubernetesApiError as exc:
            if exc.status == 404:
                return None
            raise
        return _json(response)

    def own_claim(self, namespace: str, pod: Json) -> None:
        """Make ``pod`` own its claim so garbage collection deletes both (best effort)."""
        meta = pod["metadata"]
        owner = {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": meta["name"],
            "uid": meta["uid"],
            "blockOwnerDeletion": False,
        }
        claim = naming.claim_name(meta["name"])
        try:
            self._caller.call(
                f"set owner of resourceclaim {namespace}/{claim}",
                lambda: self._custom.patch_namespaced_custom_object(
                    _GROUP,
                    _VERSION,
                    namespace,
                    _CLAIMS,
                    claim,
                    {"metadata": {"ownerReferences": [owner]}},
                    _request_timeout=self._timeout,
                ),
            )
        except KubernetesApiError as exc:
            log.warning("%s; the claim is deleted explicitly when the pod finishes", exc)

    def read_pod(self, namespace: str, name: str) -> Json | None:
        """The pod, or ``None`` if it does not exist."""
        try:
            response = self._caller.call(
                f"read pod {namespace}/{name}",
                lambda: self._core.read_namespaced_pod(
                    name, namespace, _request_timeout=self._timeout, _preload_content=False
                ),
            )
        except KubernetesApiError as exc:
            if exc.status == 404:
                return None
            raise
        return _json(response)

    def patch_pod(self, namespace: str, name: str, patch: Json) -> Json:
        """Strategic-merge ``patch`` into a pod; returns the patched pod."""
        response = self._caller.call(
            f"patch pod {namespace}/{name}",
            lambda: self._core.patch_namespaced_pod(
                name, namespace, patch, _request_timeout=self._timeout, _preload_content=False
            ),
        )
        return _json(response)

    def list_pods(self, namespace: str, selector: str) -> list[Json]:
        response = self._caller.call(
            f"list pods in {namespace}",
            lambda: self._core.list_namespaced_pod(
                namespace,
                label_selector=selector,
                _request_timeout=self._timeout,
                _preload_content=False,
            ),
        )
        items = _json(response).get("items") or []
        return [p for p in items if isinstance(p, dict)]

    def delete_pod(self, namespace: str, name: str) -> None:
        """Delete a pod; a pod already gone is fine, other failures are logged."""
        self._delete(
            f"delete pod {namespace}/{name}",
            lambda: self._core.delete_namespaced_pod(
                name, namespace, _request_timeout=self._timeout
            ),
        )

    def delete_claim(self, namespace: str, pod_name: str) -> None:
        """Delete the DRA claim of ``pod_name`` (same rules as `delete_pod`)."""
        claim = naming.claim_name(pod_name)
        self._delete(
            f"delete resourceclaim {namespace}/{claim}",
            lambda: self._custom.delete_namespaced_custom_object(
                _GROUP, _VERSION, namespace, _CLAIMS, claim, _request_timeout=self._timeout
            ),
        )

    def read_log(self, namespace: str, name: str, limit_bytes: int) -> str:
        """The first ``limit_bytes`` of the stage container's log."""
        response = self._caller.call(
            f"read log of pod {namespace}/{name}",
            lambda: self._core.read_namespaced_pod_log(
                name,
                namespace,
                container=BASE_CONTAINER,
                limit_bytes=limit_bytes,
                _request_timeout=self._timeout,
                _preload_content=False,
            ),
        )
        data: bytes = response.data
        return data.decode("utf-8", "replace")

    def _delete(self, action: str, fn: Any) -> None:
        try:
            self._caller.call(action, fn)
        except KubernetesApiError as exc:
            if exc.status != 404:
                log.warning("%s", exc)
