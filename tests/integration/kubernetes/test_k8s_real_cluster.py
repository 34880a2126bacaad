"""Against a real cluster: runs only when ``KUBECONFIG`` is set (skipped otherwise).

Uses small non-GPU pods by default so it runs on any cluster (kind, k3s, a GPU pool):
``env-pin`` mode without a runtime class and with a made-up UUID only sets environment
variables. On a GPU cluster, set ``FATE_K8S_TEST_GPU_MODE`` (``dra`` or
``device-plugin``) and ``FATE_K8S_TEST_GPU_UUIDS`` to pin real GPUs.

Environment:
    KUBECONFIG                  required; the identity needs the RBAC in k8s/base.
    FATE_K8S_TEST_NAMESPACE     existing namespace to use (default ``airflow-fate-test``).
    FATE_K8S_TEST_NODE          node to pin to (default: first schedulable Ready node).
    FATE_K8S_TEST_IMAGE         image with ``sh`` (default ``busybox:1.36``).
    FATE_K8S_TEST_GPU_MODE      ``env-pin`` (default), ``dra`` or ``device-plugin``.
    FATE_K8S_TEST_GPU_UUIDS     comma-separated UUIDs on that node (GPU modes only).
    FATE_K8S_TEST_TIMEOUT_S     per-test wait (default 180).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

pytest.importorskip("kubernetes", reason="the [kubernetes] extra is not installed")
from k8s_testkit import has, kinds, poll_until
from kubernetes import client

from airflow_fate.launch.kubernetes import naming
from airflow_fate.launch.kubernetes.client import load_api_client
from airflow_fate.launch.kubernetes.launcher import KubernetesLauncher
from airflow_fate.launch.kubernetes.settings import GpuMode, LauncherSettings, PodSettings
from airflow_fate.launch.types import EventKind, GpuPlacement, LaunchRequest, TaskKey

pytestmark = pytest.mark.skipif(
    not os.environ.get("KUBECONFIG"), reason="real-cluster suite: set KUBECONFIG to run it"
)

E = EventKind
NAMESPACE = os.environ.get("FATE_K8S_TEST_NAMESPACE", "airflow-fate-test")
IMAGE = os.environ.get("FATE_K8S_TEST_IMAGE", "busybox:1.36")
MODE = GpuMode(os.environ.get("FATE_K8S_TEST_GPU_MODE", "env-pin"))
TIMEOUT_S = float(os.environ.get("FATE_K8S_TEST_TIMEOUT_S", "180"))
RUN = uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def core() -> Iterator[client.CoreV1Api]:
    api = load_api_client()
    core = client.CoreV1Api(api)
    try:
        core.read_namespace(NAMESPACE, _request_timeout=15)
    except client.exceptions.ApiException as exc:
        pytest.skip(f"namespace {NAMESPACE} not usable ({exc.status}); create it first")
    yield core
    core.delete_collection_namespaced_pod(
        NAMESPACE, label_selector=f"{naming.DAG_ID}=real-cluster-{RUN}", _request_timeout=30
    )
    api.close()


@pytest.fixture(scope="module")
def node(core: client.CoreV1Api) -> str:
    wanted = os.environ.get("FATE_K8S_TEST_NODE")
    if wanted:
        return wanted
    for item in core.list_node(_request_timeout=30).items:
        ready = any(c.type == "Ready" and c.status == "True" for c in item.status.conditions or [])
        if ready and not item.spec.unschedulable:
            return str(item.metadata.name)
    pytest.skip("no schedulable Ready node")


def _settings(executor_id: str) -> LauncherSettings:
    return LauncherSettings(
        executor_id=executor_id,
        watch_timeout_s=30,
        unschedulable_timeout_s=TIMEOUT_S,
        pod=PodSettings(
            namespace=NAMESPACE,
            image=IMAGE,
            gpu_mode=MODE,
            runtime_class=os.environ.get("FATE_K8S_TEST_RUNTIME_CLASS"),
            outputs_claim=None,
            model_cache_host_path=None,
            service_account="default",
            shm_size="64Mi",
        ),
    )


def _request(node: str, task: str, script: str) -> LaunchRequest:
    raw = os.environ.get("FATE_K8S_TEST_GPU_UUIDS", "GPU-00000000-0000-0000-0000-000000000000")
    uuids = tuple(u for u in raw.split(",") if u)
    return LaunchRequest(
        key=TaskKey(f"real-cluster-{RUN}", task, f"manual__{RUN}", 1),
        command=("sh", "-c", script),
        placement=GpuPlacement(node, tuple(range(len(uuids))), uuids),
    )


@pytest.fixture
def launcher() -> Iterator[KubernetesLauncher]:
    with KubernetesLauncher(_settings(f"real-{RUN}")) as started:
        yield started


def test_success_and_cleanup(
    core: client.CoreV1Api, node: str, launcher: KubernetesLauncher
) -> None:
    req = _request(node, "ok", "echo FATE-PLACEMENT ${NVIDIA_VISIBLE_DEVICES:-}; sleep 2")
    launcher.launch(req)
    events = poll_until(launcher, has(E.SUCCEEDED), timeout_s=TIMEOUT_S)
    assert E.FAILED not in kinds(events)
    pod = core.read_namespaced_pod(naming.pod_name(req.key), NAMESPACE, _request_timeout=15)
    assert pod.metadata.deletion_timestamp is not None or pod.status.phase == "Succeeded"


def test_failure_reports_exit_code(node: str, launcher: KubernetesLauncher) -> None:
    launcher.launch(_request(node, "fails", "exit 3"))
    events = poll_until(launcher, has(E.FAILED), timeout_s=TIMEOUT_S)
    assert "exit code 3" in events[-1].reason


def test_bad_image_fails_while_pending(node: str) -> None:
    settings = _settings(f"real-{RUN}-img")
    bad = settings.model_copy(
        update={"pod": settings.pod.model_copy(update={"image": f"airflow-fate.invalid/x:{RUN}"})}
    )
    with KubernetesLauncher(bad) as launcher:
        launcher.launch(_request(node, "bad-image", "true"))
        events = poll_until(launcher, has(E.FAILED), timeout_s=TIMEOUT_S)
    assert "Pending with container base" in events[-1].reason


def test_restart_adopts_running_pod_without_duplicate(core: client.CoreV1Api, node: str) -> None:
    req = _request(node, "adopted", "sleep 15")
    with KubernetesLauncher(_settings(f"real-{RUN}-a")) as first:
        first.launch(req)
        poll_until(first, has(E.RUNNING), timeout_s=TIMEOUT_S)
    with KubernetesLauncher(_settings(f"real-{RUN}-b")) as second:
        assert second.adopt([req.key]) == [req.key]
        second.launch(req)  # Airflow re-queued it: must not create a second pod
        events = poll_until(second, has(E.SUCCEEDED), timeout_s=TIMEOUT_S)
    assert E.ADOPTED in kinds(events)
    pods = core.list_namespaced_pod(
        NAMESPACE, label_selector=naming.task_selector(req.key), _request_timeout=15
    )
    assert len(pods.items) <= 1
