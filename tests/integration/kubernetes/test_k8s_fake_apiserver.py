"""The fake API server behaves like the real one where the launcher depends on it.

Everything goes through the official client over HTTP, so these tests also pin down the
client behaviours (and traps) the launcher relies on.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

pytest.importorskip("kubernetes", reason="the [kubernetes] extra is not installed")
import urllib3
from fake_apiserver import FakeApiServer, FakeKubelet, Fault
from k8s_testkit import NAMESPACE
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException


def _pod(name: str, labels: dict[str, str] | None = None, node: str = "n1") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "containers": [{"name": "base", "image": "busybox:1.36"}],
        },
    }


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


def _names(pod_list: Any) -> list[str]:
    return sorted(p.metadata.name for p in pod_list.items)


def test_create_fills_server_defaults_and_conflicts_on_duplicates(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_pod(NAMESPACE, _pod("a"))
    assert created.metadata.uid
    assert created.metadata.resource_version
    assert created.metadata.creation_timestamp is not None
    assert created.status.phase == "Pending"
    assert created.spec.restart_policy == "Always"
    assert created.spec.containers[0].termination_message_path == "/dev/termination-log"
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(NAMESPACE, _pod("a"))
    assert err.value.status == 409
    assert json.loads(err.value.body)["reason"] == "AlreadyExists"


def test_get_list_delete(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(NAMESPACE, _pod("a"))
    core.create_namespaced_pod("other", _pod("b"))
    assert core.read_namespaced_pod("a", NAMESPACE).metadata.name == "a"
    assert _names(core.list_namespaced_pod(NAMESPACE)) == ["a"]
    core.delete_namespaced_pod("a", NAMESPACE)  # unbound pod: gone at once
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod("a", NAMESPACE)
    assert err.value.status == 404


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        pytest.param("team=search", ["a", "b"], id="equals"),
        pytest.param("team==search,tier=gpu", ["a"], id="double-equals-and"),
        pytest.param("team!=search", ["c", "d"], id="not-equals"),
        pytest.param("tier in (gpu, cpu)", ["a", "b"], id="in"),
        pytest.param("tier notin (gpu)", ["b", "c", "d"], id="notin"),
        pytest.param("tier", ["a", "b"], id="exists"),
        pytest.param("!tier", ["c", "d"], id="not-exists"),
    ],
)
def test_label_selectors(core: client.CoreV1Api, selector: str, expected: list[str]) -> None:
    core.create_namespaced_pod(NAMESPACE, _pod("a", {"team": "search", "tier": "gpu"}))
    core.create_namespaced_pod(NAMESPACE, _pod("b", {"team": "search", "tier": "cpu"}))
    core.create_namespaced_pod(NAMESPACE, _pod("c", {"team": "ads"}))
    core.create_namespaced_pod(NAMESPACE, _pod("d"))
    assert _names(core.list_namespaced_pod(NAMESPACE, label_selector=selector)) == expected


def test_field_selectors(core: client.CoreV1Api, kubelet: FakeKubelet) -> None:
    core.create_namespaced_pod(NAMESPACE, _pod("a", node="n1"))
    core.create_namespaced_pod(NAMESPACE, _pod("b", node="n2"))
    kubelet.run(NAMESPACE, "a")
    kubelet.bind(NAMESPACE, "b")
    by = core.list_namespaced_pod
    assert _names(by(NAMESPACE, field_selector="metadata.name=b")) == ["b"]
    assert _names(by(NAMESPACE, field_selector="status.phase=Running")) == ["a"]
    assert _names(by(NAMESPACE, field_selector="spec.nodeName=n2")) == ["b"]
    assert _names(by(NAMESPACE, field_selector="status.phase!=Running")) == ["b"]
    with pytest.raises(ApiException) as err:
        by(NAMESPACE, field_selector="spec.bogus=1")
    assert err.value.status == 400


def _raw_patch(apiserver: FakeApiServer, path: str, body: Any, content_type: str) -> int:
    request = urllib.request.Request(
        apiserver.url + path,
        data=json.dumps(body).encode(),
        method="PATCH",
        headers={"Content-Type": content_type},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


def test_patch_content_types(apiserver: FakeApiServer, core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(NAMESPACE, _pod("a", {"x": "1"}))
    # The client sends a dict body as a strategic merge patch (in 30.x via a rewrite of
    # its JSON-Patch default), a list body as JSON Patch.
    merged = core.patch_namespaced_pod("a", NAMESPACE, {"metadata": {"labels": {"y": "2"}}})
    assert merged.metadata.labels == {"x": "1", "y": "2"}
    removed = core.patch_namespaced_pod(
        "a", NAMESPACE, [{"op": "remove", "path": "/metadata/labels/x"}]
    )
    assert removed.metadata.labels == {"y": "2"}
    path = f"/api/v1/namespaces/{NAMESPACE}/pods/a"
    label = {"metadata": {"labels": {"z": "3"}}}
    assert _raw_patch(apiserver, path, label, "application/merge-patch+json") == 200
    assert core.read_namespaced_pod("a", NAMESPACE).metadata.labels == {"y": "2", "z": "3"}
    # Like the real server: an object is not a JSON Patch, and unknown types are refused.
    assert _raw_patch(apiserver, path, label, "application/json-patch+json") == 400
    assert _raw_patch(apiserver, path, label, "text/plain") == 415


def test_status_subresource_changes_status_only(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(NAMESPACE, _pod("a"))
    patch = {"status": {"phase": "Running"}, "spec": {"restartPolicy": "Never"}}
    pod = core.patch_namespaced_pod_status("a", NAMESPACE, patch)
    assert pod.status.phase == "Running"
    assert pod.spec.restart_policy == "Always"
    # A patch of the main resource cannot change status.
    pod = core.patch_namespaced_pod(
        "a",
        NAMESPACE,
        {"status": {"phase": "Failed"}},
    )
    assert pod.status.phase == "Running"
    stale = core.read_namespaced_pod_status("a", NAMESPACE)
    core.patch_namespaced_pod_status(
        "a",
        NAMESPACE,
        {"status": {"podIP": "1.2.3.4"}},
    )
    stale.status.phase = "Succeeded"
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_pod_status("a", NAMESPACE, stale)
    assert err.value.status == 409


def test_pod_spec_is_immutable_but_binding_is_allowed(
    core: client.CoreV1Api, kubelet: FakeKubelet
) -> None:
    core.create_namespaced_pod(NAMESPACE, _pod("a"))
    assert kubelet.bind(NAMESPACE, "a")["spec"]["nodeName"] == "n1"
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_pod(
            "a",
            NAMESPACE,
            {"spec": {"restartPolicy": "Never"}},
        )
    assert err.value.status == 422


def test_log_is_read_raw_and_refused_while_waiting(
    core: client.CoreV1Api, kubelet: FakeKubelet
) -> None:
    core.create_namespaced_pod(NAMESPACE, _pod("a"))
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log("a", NAMESPACE, container="base")
    assert err.value.status == 400
    text = 'FATE-PLACEMENT GPU-1\n{"metric": 1}\nünïcode\n'
    kubelet.run(NAMESPACE, "a", log=text)
    raw = core.read_namespaced_pod_log("a", NAMESPACE, container="base", _preload_content=False)
    assert raw.data.decode() == text
    limited = core.read_namespaced_pod_log(
        "a", NAMESPACE, container="base", limit_bytes=5, _preload_content=False
    )
    assert limited.data.decode() == "FATE-"


def _drain(stream: Any) -> list[tuple[str, str]]:
    return [(e["type"], e["object"].metadata.name) for e in stream]


def test_watch_resumes_from_resource_version(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(NAMESPACE, _pod("a"))
    rv = core.list_namespaced_pod(NAMESPACE).metadata.resource_version
    core.create_namespaced_pod(NAMESPACE, _pod("b"))
    w = watch.Watch()
    events = _drain(
        w.stream(core.list_namespaced_pod, NAMESPACE, resource_version=rv, timeout_seconds=1)
    )
    assert events == [("ADDED", "b")]


def test_watch_without_version_starts_with_current_objects(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(NAMESPACE, _pod("a"))
    events = _drain(watch.Watch().stream(core.list_namespaced_pod, NAMESPACE, timeout_seconds=1))
    assert events == [("ADDED", "a")]


def test_watch_ends_after_timeout_seconds(core: client.CoreV1Api) -> None:
    started = time.monotonic()
    assert (
        _drain(watch.Watch().stream(core.list_namespaced_pod, NAMESPACE, timeout_seconds=1)) == []
    )
    assert 0.9 <= time.monotonic() - started < 3


def test_watch_gets_410_after_compaction(apiserver: FakeApiServer, core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(NAMESPACE, _pod("a"))
    rv = core.list_namespaced_pod(NAMESPACE).metadata.resource_version
    core.create_namespaced_pod(NAMESPACE, _pod("b"))
    apiserver.compact()
    with pytest.raises(ApiException) as err:
        _drain(
            watch.Watch().stream(
                core.list_namespaced_pod, NAMESPACE, resource_version=rv, timeout_seconds=1
            )
        )
    assert err.value.status == 410


def test_graceful_delete_sets_deletion_timestamp_before_deleted(
    core: client.CoreV1Api, kubelet: FakeKubelet
) -> None:
    core.create_namespaced_pod(NAMESPACE, _pod("a"))
    kubelet.run(NAMESPACE, "a")
    rv = core.list_namespaced_pod(NAMESPACE).metadata.resource_version
    core.delete_namespaced_pod("a", NAMESPACE)
    assert core.read_namespaced_pod("a", NAMESPACE).metadata.deletion_timestamp is not None
    assert kubelet.finish_deletions() == ["a"]
    events = list(
        watch.Watch().stream(
            core.list_namespaced_pod, NAMESPACE, resource_version=rv, timeout_seconds=1
        )
    )
    assert [e["type"] for e in events] == ["MODIFIED", "DELETED"]
    assert all(e["object"].metadata.deletion_timestamp is not None for e in events)


def test_filtered_watch_reports_objects_leaving_and_entering_the_selection(
    core: client.CoreV1Api,
) -> None:
    core.create_namespaced_pod(NAMESPACE, _pod("a", {"owner": "one"}))
    rv = core.list_namespaced_pod(NAMESPACE).metadata.resource_version
    core.patch_namespaced_pod(
        "a",
        NAMESPACE,
        {"metadata": {"labels": {"owner": "two"}}},
    )

    def seen(selector: str) -> list[tuple[str, Any]]:
        stream = watch.Watch().stream(
            core.list_namespaced_pod,
            NAMESPACE,
            label_selector=selector,
            resource_version=rv,
            timeout_seconds=1,
        )
        return [(e["type"], e["object"].metadata.deletion_timestamp) for e in stream]

    assert seen("owner=one") == [("DELETED", None)]
    assert seen("owner=two") == [("ADDED", None)]


def test_dropped_watch_breaks_the_client_stream(
    apiserver: FakeApiServer, core: client.CoreV1Api
) -> None:
    stream = watch.Watch().stream(core.list_namespaced_pod, NAMESPACE, timeout_seconds=5)
    core.create_namespaced_pod(NAMESPACE, _pod("a"))
    assert next(stream)["type"] == "ADDED"
    apiserver.drop_watches()
    with pytest.raises(urllib3.exceptions.ProtocolError):
        next(stream)


def test_injected_faults_carry_status_and_retry_after(
    apiserver: FakeApiServer, core: client.CoreV1Api
) -> None:
    apiserver.inject(Fault("POST", "pods", 429, retry_after="3"))
    apiserver.inject(Fault("POST", "pods", 500))
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(NAMESPACE, _pod("a"))
    assert (err.value.status, err.value.headers["Retry-After"]) == (429, "3")
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(NAMESPACE, _pod("a"))
    assert err.value.status == 500
    assert core.create_namespaced_pod(NAMESPACE, _pod("a")).metadata.name == "a"


def test_resource_claims_and_cluster_scoped_nodes(
    apiserver: FakeApiServer, api_client: client.ApiClient
) -> None:
    custom = client.CustomObjectsApi(api_client)
    claim = {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": "c"},
        "spec": {"devices": {"requests": []}},
    }
    custom.create_namespaced_custom_object(
        "resource.k8s.io", "v1", NAMESPACE, "resourceclaims", claim
    )
    got = custom.get_namespaced_custom_object(
        "resource.k8s.io", "v1", NAMESPACE, "resourceclaims", "c"
    )
    assert got["metadata"]["uid"]
    apiserver.create("nodes", {"metadata": {"name": "gpu-1", "labels": {"a": "b"}}})
    nodes = client.CoreV1Api(api_client).list_node()
    assert [n.metadata.name for n in nodes.items] == ["gpu-1"]
