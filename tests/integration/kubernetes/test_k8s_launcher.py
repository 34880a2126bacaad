"""The launcher's lifecycle against the fake API server: launch, observe, finish, clean up."""

from __future__ import annotations

import pytest

pytest.importorskip("kubernetes", reason="the [kubernetes] extra is not installed")
from fake_apiserver import FakeApiServer, FakeKubelet
from k8s_testkit import (
    NAMESPACE,
    FakeClock,
    LauncherFactory,
    has,
    kinds,
    launch_request,
    poll_until,
    settings_for,
    task_key,
    wait_until,
)

from airflow_fate.launch.kubernetes import naming
from airflow_fate.launch.kubernetes.settings import GpuMode
from airflow_fate.launch.types import EventKind, GpuPlacement, LaunchRequest

E = EventKind


def _only_pod(apiserver: FakeApiServer) -> str:
    pods = apiserver.objects("pods", NAMESPACE)
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    return str(pods[0]["metadata"]["name"])


@pytest.mark.parametrize("mode", list(GpuMode))
def test_stage_runs_to_success_pinned_to_the_planned_node(
    mode: GpuMode,
    apiserver: FakeApiServer,
    kubelet: FakeKubelet,
    make_launcher: LauncherFactory,
) -> None:
    launcher = make_launcher(settings_for(mode))
    req = launch_request(node="gpu-node-b", indices=(2, 3))
    launcher.launch(req)
    name = _only_pod(apiserver)
    assert name == naming.pod_name(req.key)
    pod = apiserver.get("pods", NAMESPACE, name)
    assert pod is not None
    assert pod["spec"]["nodeSelector"]["kubernetes.io/hostname"] == "gpu-node-b"
    if mode is GpuMode.DEVICE_PLUGIN:
        log = 'FATE-PLACEMENT GPU-real-7,GPU-real-5\n{"step": 1}\n'
    else:
        log = "stage output\n"
    kubelet.run(NAMESPACE, name, log=log)
    wanted = {E.RUNNING, E.PLACED} if mode is GpuMode.DEVICE_PLUGIN else {E.RUNNING}
    events = poll_until(launcher, lambda ev: wanted <= set(kinds(ev)))
    running = next(e for e in events if e.kind is E.RUNNING)
    assert running.node == "gpu-node-b"
    if mode is GpuMode.DEVICE_PLUGIN:
        assert running.gpu_uuids == ()
        placed = next(e for e in events if e.kind is E.PLACED)
        assert placed.gpu_uuids == ("GPU-real-7", "GPU-real-5")
    else:
        assert running.gpu_uuids == req.placement.gpu_uuids
    kubelet.succeed(NAMESPACE, name)
    events += poll_until(launcher, has(E.SUCCEEDED))
    assert kinds(events).count(E.SUCCEEDED) == 1
    assert apiserver.objects("pods", NAMESPACE) == []
    assert apiserver.objects("resourceclaims", NAMESPACE) == []
    assert launcher.tracked == frozenset()


def test_dra_claim_is_created_first_and_owned_by_the_pod(
    apiserver: FakeApiServer, make_launcher: LauncherFactory
) -> None:
    launcher = make_launcher(settings_for(GpuMode.DRA))
    req = launch_request(indices=(0, 1, 2, 3))
    launcher.launch(req)
    claims = apiserver.objects("resourceclaims", NAMESPACE)
    assert len(claims) == 1
    exactly = claims[0]["spec"]["devices"]["requests"][0]["exactly"]
    assert exactly["count"] == 4
    pod = apiserver.get("pods", NAMESPACE, naming.pod_name(req.key))
    assert pod is not None
    owner = claims[0]["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "Pod",
        pod["metadata"]["name"],
        pod["metadata"]["uid"],
    )
    creates = [r.path for r in apiserver.requests if r.method == "POST"]
    assert creates[0].endswith("/resourceclaims") and creates[1].endswith("/pods")


@pytest.mark.parametrize(
    ("break_pod", "reason"),
    [
        pytest.param(lambda k, n: k.fail(NAMESPACE, n, code=3), "exit code 3", id="exit-code"),
        pytest.param(lambda k, n: k.evict(NAMESPACE, n), "Evicted", id="evicted"),
        pytest.param(
            lambda k, n: k.fail(NAMESPACE, n, code=137, reason="OOMKilled"), "OOMKilled", id="oom"
        ),
        pytest.param(
            lambda k, n: k.image_pull_error(NAMESPACE, n), "ErrImagePull", id="bad-image-pending"
        ),
    ],
)
def test_failures_are_reported_with_reason_and_pod_removed(
    apiserver: FakeApiServer,
    kubelet: FakeKubelet,
    make_launcher: LauncherFactory,
    break_pod: object,
    reason: str,
) -> None:
    launcher = make_launcher()
    launcher.launch(launch_request())
    name = _only_pod(apiserver)
    break_pod(kubelet, name)  # type: ignore[operator]
    events = poll_until(launcher, has(E.FAILED))
    failed = next(e for e in events if e.kind is E.FAILED)
    assert reason in failed.reason
    kubelet.finish_deletions()
    wait_until(lambda: apiserver.objects("pods", NAMESPACE) == [])


def test_label_mode_keeps_finished_pods_marked_done(
    apiserver: FakeApiServer, kubelet: FakeKubelet, make_launcher: LauncherFactory
) -> None:
    launcher = make_launcher(settings_for(on_finish="label"))
    launcher.launch(launch_request())
    name = _only_pod(apiserver)
    kubelet.run(NAMESPACE, name)
    kubelet.succeed(NAMESPACE, name)
    events = poll_until(launcher, has(E.SUCCEEDED))
    assert kinds(events).count(E.SUCCEEDED) == 1
    pod = apiserver.get("pods", NAMESPACE, name)
    assert pod is not None
    assert pod["metadata"]["labels"][naming.DONE_LABEL] == "true"
    assert pod["metadata"]["annotations"][naming.FINISHED_ANNOTATION] == "succeeded"
    # The pod left the watch's selection; no further events, and nothing is released.
    assert launcher.poll() == []


def test_unschedulable_pod_fails_after_the_timeout(
    apiserver: FakeApiServer,
    kubelet: FakeKubelet,
    make_launcher: LauncherFactory,
    clock: FakeClock,
) -> None:
    launcher = make_launcher(settings_for(unschedulable_timeout_s=120))
    launcher.launch(launch_request())
    name = _only_pod(apiserver)
    kubelet.unschedulable(NAMESPACE, name, "0/4 nodes are available: cannot allocate all claims")
    wait_until(lambda: launcher.poll() == [] and _unschedulable_seen(launcher))
    clock.advance(119)
    assert launcher.poll() == []
    clock.advance(2)
    events = launcher.poll()
    assert kinds(events) == [E.FAILED]
    assert "unschedulable on node gpu-node-a" in events[0].reason
    assert "cannot allocate all claims" in events[0].reason
    wait_until(lambda: apiserver.objects("pods", NAMESPACE) == [])


def _marked_for_deletion(apiserver: FakeApiServer, name: str) -> bool:
    pod = apiserver.get("pods", NAMESPACE, name)
    return pod is not None and bool(pod["metadata"].get("deletionTimestamp"))


def _unschedulable_seen(launcher: object) -> bool:
    tracked = getattr(launcher, "_tracked", {})
    return any(t.unschedulable_since is not None for t in tracked.values())


def test_cancel_deletes_pod_and_claim_without_events(
    apiserver: FakeApiServer, kubelet: FakeKubelet, make_launcher: LauncherFactory
) -> None:
    launcher = make_launcher()
    req = launch_request()
    launcher.launch(req)
    name = _only_pod(apiserver)
    kubelet.run(NAMESPACE, name)
    poll_until(launcher, has(E.RUNNING))
    launcher.cancel(req.key)
    assert apiserver.objects("resourceclaims", NAMESPACE) == []
    kubelet.finish_deletions()
    wait_until(lambda: apiserver.objects("pods", NAMESPACE) == [])
    assert launcher.poll() == []
    assert launcher.tracked == frozenset()


def test_pod_deleted_by_someone_else_fails_the_task(
    apiserver: FakeApiServer, kubelet: FakeKubelet, make_launcher: LauncherFactory
) -> None:
    launcher = make_launcher()
    launcher.launch(launch_request())
    name = _only_pod(apiserver)
    kubelet.run(NAMESPACE, name)
    poll_until(launcher, has(E.RUNNING))
    apiserver.delete("pods", NAMESPACE, name)  # kubectl delete pod: graceful
    wait_until(lambda: launcher.poll() == [] and _marked_for_deletion(apiserver, name))
    kubelet.finish_deletions()
    events = poll_until(launcher, has(E.FAILED))
    assert "deleted before it completed" in events[-1].reason


def test_duplicate_launch_of_a_tracked_try_is_ignored(
    apiserver: FakeApiServer, make_launcher: LauncherFactory
) -> None:
    launcher = make_launcher()
    req = launch_request()
    launcher.launch(req)
    launcher.launch(req)
    assert apiserver.count("POST", "/pods") == 1
    assert launcher.tracked == frozenset({req.key})


def test_placement_without_uuids_fails_at_once_in_dra_mode(
    apiserver: FakeApiServer, make_launcher: LauncherFactory
) -> None:
    launcher = make_launcher(settings_for(GpuMode.DRA))
    req = LaunchRequest(
        key=task_key(), command=("true",), placement=GpuPlacement("gpu-node-a", (0,))
    )
    launcher.launch(req)
    events = launcher.poll()
    assert kinds(events) == [E.FAILED]
    assert "pins GPUs by UUID" in events[0].reason
    assert apiserver.count("POST", "/pods") == 0


def test_pods_in_several_namespaces_get_one_watch_each(
    apiserver: FakeApiServer, kubelet: FakeKubelet, make_launcher: LauncherFactory
) -> None:
    launcher = make_launcher()
    first = launch_request(task_key("a"))
    second = LaunchRequest(task_key("b"), first.command, first.placement, namespace="team-b")
    launcher.launch(first)
    launcher.launch(second)
    assert launcher.watcher(NAMESPACE) is not None
    assert launcher.watcher("team-b") is not None
    kubelet.run("team-b", naming.pod_name(second.key))
    kubelet.succeed("team-b", naming.pod_name(second.key))
    events = poll_until(launcher, has(E.SUCCEEDED, second.key))
    assert [e.namespace for e in events if e.kind is E.SUCCEEDED] == ["team-b"]


def test_poll_can_wait_for_the_first_observation(
    apiserver: FakeApiServer, kubelet: FakeKubelet, make_launcher: LauncherFactory
) -> None:
    launcher = make_launcher()
    req = launch_request()
    launcher.launch(req)
    kubelet.run(NAMESPACE, naming.pod_name(req.key))
    events: list[object] = []
    for _ in range(50):  # each call blocks until an observation arrives (or 0.2 s)
        events += launcher.poll(timeout_s=0.2)
        if E.RUNNING in kinds(events):  # type: ignore[arg-type]
            break
    assert E.RUNNING in kinds(events)  # type: ignore[arg-type]
