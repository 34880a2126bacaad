"""Launcher fault tests: every API error class, dropped watches, 410 Gone, restarts."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("kubernetes", reason="the [kubernetes] extra is not installed")
from fake_apiserver import FakeApiServer, FakeKubelet, Fault
from k8s_testkit import (
    NAMESPACE,
    FakeClock,
    LauncherFactory,
    SleepRecorder,
    has,
    kinds,
    launch_request,
    poll_until,
    settings_for,
    task_key,
    wait_until,
)

from airflow_fate.launch.kubernetes import naming
from airflow_fate.launch.kubernetes.podspec import build_pod
from airflow_fate.launch.kubernetes.settings import GpuMode, RetrySettings
from airflow_fate.launch.types import EventKind

E = EventKind


# -- 409: the pod exists ---------------------------------------------------------------


def test_409_from_an_earlier_attempt_of_ours_tracks_the_pod_without_duplicating(
    apiserver: FakeApiServer, kubelet: FakeKubelet, make_launcher: LauncherFactory
) -> None:
    settings = settings_for(GpuMode.ENV_PIN)
    req = launch_request()
    # An earlier create succeeded but its response was lost.
    apiserver.create("pods", build_pod(req, settings.pod, settings.executor_id))
    launcher = make_launcher(settings)
    launcher.launch(req)
    assert len(apiserver.objects("pods", NAMESPACE)) == 1
    name = naming.pod_name(req.key)
    kubelet.run(NAMESPACE, name)
    kubelet.succeed(NAMESPACE, name)
    events = poll_until(launcher, has(E.SUCCEEDED))
    assert E.ADOPTED not in kinds(events)
    assert apiserver.count("POST", "/pods") == 1  # ours, answered 409


def test_409_for_another_executors_pod_adopts_it(
    apiserver: FakeApiServer, kubelet: FakeKubelet, make_launcher: LauncherFactory
) -> None:
    old = settings_for(GpuMode.ENV_PIN, executor_id="old-scheduler")
    req = launch_request()
    apiserver.create("pods", build_pod(req, old.pod, old.executor_id))
    launcher = make_launcher(settings_for(GpuMode.ENV_PIN, executor_id="new-scheduler"))
    launcher.launch(req)
    events = launcher.poll()
    assert kinds(events)[0] is E.ADOPTED
    pod = apiserver.get("pods", NAMESPACE, naming.pod_name(req.key))
    assert pod is not None
    assert pod["metadata"]["labels"][naming.EXECUTOR_LABEL] == "new-scheduler"
    kubelet.run(NAMESPACE, naming.pod_name(req.key))
    poll_until(launcher, has(E.RUNNING))
    assert len(apiserver.objects("pods", NAMESPACE)) == 1


def test_409_for_a_pod_of_another_try_is_refused(
    apiserver: FakeApiServer, make_launcher: LauncherFactory
) -> None:
    settings = settings_for(GpuMode.ENV_PIN)
    req = launch_request()
    squatter = build_pod(launch_request(task_key("other")), settings.pod, "x")
    squatter["metadata"]["name"] = naming.pod_name(req.key)
    apiserver.create("pods", squatter)
    launcher = make_launcher(settings)
    launcher.launch(req)
    events = launcher.poll()
    assert kinds(events) == [E.FAILED]
    assert "belongs to" in events[0].reason


def test_409_on_the_dra_claim_reuses_it(
    apiserver: FakeApiServer, make_launcher: LauncherFactory
) -> None:
    apiserver.inject(Fault("POST", "resourceclaims", 409, message="already exists"))
    launcher = make_launcher(settings_for(GpuMode.DRA))
    launcher.launch(launch_request())
    assert len(apiserver.objects("pods", NAMESPACE)) == 1
    assert launcher.poll() == []


# -- 429 and 5xx: retry with backoff ----------------------------------------------------


def test_429_retry_after_is_honoured_on_later_polls(
    apiserver: FakeApiServer, make_launcher: LauncherFactory, clock: FakeClock
) -> None:
    apiserver.inject(Fault("POST", "pods", 429, retry_after="7", message="slow down"))
    launcher = make_launcher(settings_for(GpuMode.ENV_PIN))
    req = launch_request()
    launcher.launch(req)
    assert apiserver.objects("pods", NAMESPACE) == []
    assert launcher.tracked == frozenset({req.key})
    clock.advance(6.9)
    assert launcher.poll() == []
    assert apiserver.count("POST", "/pods") == 1
    clock.advance(0.2)
    assert launcher.poll() == []
    assert apiserver.count("POST", "/pods") == 2
    assert len(apiserver.objects("pods", NAMESPACE)) == 1


def test_5xx_backs_off_exponentially_then_succeeds(
    apiserver: FakeApiServer, make_launcher: LauncherFactory, clock: FakeClock
) -> None:
    apiserver.inject(Fault("POST", "pods", 500, times=2))
    retry = RetrySettings(base_delay_s=1.0, max_delay_s=60)
    launcher = make_launcher(settings_for(GpuMode.ENV_PIN, retry=retry))
    launcher.launch(launch_request())
    clock.advance(0.99)
    launcher.poll()
    assert apiserver.count("POST", "/pods") == 1
    clock.advance(0.02)  # 1 s after the first failure
    launcher.poll()
    assert apiserver.count("POST", "/pods") == 2
    clock.advance(1.9)
    launcher.poll()
    assert apiserver.count("POST", "/pods") == 2  # second delay is 2 s
    clock.advance(0.2)
    launcher.poll()
    assert apiserver.count("POST", "/pods") == 3
    assert len(apiserver.objects("pods", NAMESPACE)) == 1


def test_persistent_5xx_fails_the_task_after_the_attempt_cap(
    apiserver: FakeApiServer, make_launcher: LauncherFactory, clock: FakeClock
) -> None:
    apiserver.inject(Fault("POST", "pods", 503, times=100, message="etcd is down"))
    retry = RetrySettings(base_delay_s=1.0, max_delay_s=4, launch_max_attempts=4)
    launcher = make_launcher(settings_for(GpuMode.ENV_PIN, retry=retry))
    launcher.launch(launch_request())
    events: list[Any] = []
    for _ in range(10):
        clock.advance(5)
        events += launcher.poll()
    assert apiserver.count("POST", "/pods") == 4
    assert kinds(events) == [E.FAILED]
    assert "after 4 attempts" in events[0].reason
    assert "etcd is down" in events[0].reason
    assert launcher.tracked == frozenset()


# -- other 4xx: fail with the API's reason ---------------------------------------------


@pytest.mark.parametrize(
    ("status", "message"),
    [
        pytest.param(403, 'pods is forbidden: User "x" cannot create resource', id="403"),
        pytest.param(422, 'Pod "p" is invalid: spec.containers[0].image: Required', id="422"),
        pytest.param(400, "bad request", id="400"),
    ],
)
def test_other_4xx_fails_the_task_with_the_api_reason_and_cleans_the_claim(
    apiserver: FakeApiServer, make_launcher: LauncherFactory, status: int, message: str
) -> None:
    apiserver.inject(Fault("POST", "pods", status, message=message))
    launcher = make_launcher(settings_for(GpuMode.DRA))
    launcher.launch(launch_request())
    events = launcher.poll()
    assert kinds(events) == [E.FAILED]
    assert f"HTTP {status}: {message}" in events[0].reason
    assert apiserver.count("POST", "/pods") == 1
    assert apiserver.objects("resourceclaims", NAMESPACE) == []


def test_refused_claim_fails_the_task_before_any_pod_exists(
    apiserver: FakeApiServer, make_launcher: LauncherFactory
) -> None:
    message = 'resourceclaims.resource.k8s.io is forbidden: cannot create "resourceclaims"'
    apiserver.inject(Fault("POST", "resourceclaims", 403, message=message))
    launcher = make_launcher(settings_for(GpuMode.DRA))
    launcher.launch(launch_request())
    events = launcher.poll()
    assert kinds(events) == [E.FAILED]
    assert events[0].reason == f"Kubernetes refused the GPU resource claim: HTTP 403: {message}"
    assert apiserver.count("POST", "/pods") == 0


def test_cleanup_calls_retry_with_injected_sleep_honouring_retry_after(
    apiserver: FakeApiServer,
    kubelet: FakeKubelet,
    make_launcher: LauncherFactory,
    sleeps: SleepRecorder,
) -> None:
    launcher = make_launcher(settings_for(GpuMode.ENV_PIN))
    launcher.launch(launch_request())
    name = apiserver.objects("pods", NAMESPACE)[0]["metadata"]["name"]
    apiserver.inject(Fault("DELETE", "pods", 429, retry_after="4"))
    apiserver.inject(Fault("DELETE", "pods", 502))
    kubelet.run(NAMESPACE, name)
    kubelet.succeed(NAMESPACE, name)
    poll_until(launcher, has(E.SUCCEEDED))
    assert sleeps.delays == [4.0, 0.02]
    assert apiserver.count("DELETE", f"/pods/{name}") == 3
    assert apiserver.objects("pods", NAMESPACE) == []


# -- the watch ---------------------------------------------------------------------------


def test_dropped_watch_resumes_from_the_last_resource_version(
    apiserver: FakeApiServer, kubelet: FakeKubelet, make_launcher: LauncherFactory
) -> None:
    launcher = make_launcher(settings_for(GpuMode.ENV_PIN))
    launcher.launch(launch_request())
    name = apiserver.objects("pods", NAMESPACE)[0]["metadata"]["name"]
    kubelet.run(NAMESPACE, name)
    poll_until(launcher, has(E.RUNNING))
    watcher = launcher.watcher(NAMESPACE)
    assert watcher is not None
    pod = apiserver.get("pods", NAMESPACE, name)
    assert pod is not None
    seen_rv = pod["metadata"]["resourceVersion"]
    # The watcher hands an event over before it records the event's version.
    wait_until(lambda: watcher.resource_version == seen_rv)
    before = len(apiserver.watch_requests())
    apiserver.drop_watches()
    wait_until(lambda: len(apiserver.watch_requests()) > before)
    resumed = apiserver.watch_requests()[before]
    assert resumed.query["resourceVersion"] == seen_rv
    kubelet.succeed(NAMESPACE, name)
    events = poll_until(launcher, has(E.SUCCEEDED))
    assert kinds(events) == [E.SUCCEEDED]
    assert watcher.relists == 1


def _outage(apiserver: FakeApiServer) -> Fault:
    """Every new watch request fails until the returned fault is cleared."""
    fault = apiserver.inject(Fault("GET", "pods", 503, times=10_000, watch=True))
    apiserver.drop_watches()
    return fault


def test_410_gone_relists_and_reports_what_changed_meanwhile(
    apiserver: FakeApiServer, kubelet: FakeKubelet, make_launcher: LauncherFactory
) -> None:
    launcher = make_launcher(settings_for(GpuMode.ENV_PIN))
    first, second = launch_request(task_key("a")), launch_request(task_key("b"))
    launcher.launch(first)
    launcher.launch(second)
    a, b = naming.pod_name(first.key), naming.pod_name(second.key)
    kubelet.run(NAMESPACE, a)
    kubelet.run(NAMESPACE, b)
    poll_until(launcher, lambda ev: kinds(ev).count(E.RUNNING) == 2)
    fault = _outage(apiserver)
    kubelet.succeed(NAMESPACE, a)  # while nobody watches
    apiserver.delete("pods", NAMESPACE, b, grace=0)  # gone entirely
    apiserver.compact()
    fault.times = 0
    events = poll_until(launcher, lambda ev: len(ev) == 2)
    by_key = {e.key: e for e in events}
    assert by_key[first.key].kind is E.SUCCEEDED
    assert by_key[second.key].kind is E.FAILED
    assert by_key[second.key].reason == "pod disappeared while unwatched"
    watcher = launcher.watcher(NAMESPACE)
    assert watcher is not None
    assert watcher.relists == 2


def test_pod_taken_by_another_executor_is_released_not_failed(
    apiserver: FakeApiServer, kubelet: FakeKubelet, make_launcher: LauncherFactory
) -> None:
    old = make_launcher(settings_for(GpuMode.ENV_PIN, executor_id="old"))
    req = launch_request()
    old.launch(req)
    kubelet.run(NAMESPACE, naming.pod_name(req.key))
    poll_until(old, has(E.RUNNING))
    new = make_launcher(settings_for(GpuMode.ENV_PIN, executor_id="new"))
    assert new.adopt([req.key], NAMESPACE) == [req.key]
    events = poll_until(old, has(E.RELEASED))
    assert kinds(events) == [E.RELEASED]
    assert events[0].reason == "adopted by executor new"
    assert old.tracked == frozenset()


# -- scheduler restart -------------------------------------------------------------------


def test_restart_adopts_every_pod_none_duplicated_none_lost(
    apiserver: FakeApiServer, kubelet: FakeKubelet, make_launcher: LauncherFactory
) -> None:
    before = make_launcher(settings_for(GpuMode.DRA, executor_id="scheduler-job-1"))
    keys = [task_key(f"stage-{i}") for i in range(4)]
    for i, k in enumerate(keys):
        before.launch(launch_request(k, indices=(i,)))
    names = [naming.pod_name(k) for k in keys]
    for name in names[:3]:
        kubelet.run(NAMESPACE, name)
    poll_until(before, lambda ev: kinds(ev).count(E.RUNNING) == 3)
    before.close()  # the scheduler dies; pods keep running

    kubelet.succeed(NAMESPACE, names[0])  # finishes while no scheduler watches
    kubelet.fail(NAMESPACE, names[1], code=2)

    after = make_launcher(settings_for(GpuMode.DRA, executor_id="scheduler-job-2"))
    unknown = task_key("never-launched")
    assert after.adopt([*keys, unknown], NAMESPACE) == keys
    events = after.poll()
    assert kinds(events).count(E.ADOPTED) == 4
    assert {e.key: e.kind for e in events if e.kind is not E.ADOPTED} == {
        keys[0]: E.SUCCEEDED,
        keys[1]: E.FAILED,
        keys[2]: E.RUNNING,
    }
    # Airflow may queue an adopted try again: the launcher neither duplicates nor loses it.
    after.launch(launch_request(keys[2], indices=(2,)))
    after.launch(launch_request(keys[3], indices=(3,)))
    assert apiserver.count("POST", "/pods") == 4
    assert len(apiserver.objects("resourceclaims", NAMESPACE)) == 2
    for pod in apiserver.objects("pods", NAMESPACE):
        assert pod["metadata"]["labels"][naming.EXECUTOR_LABEL] == "scheduler-job-2"
    kubelet.succeed(NAMESPACE, names[2])
    kubelet.run(NAMESPACE, names[3])
    kubelet.succeed(NAMESPACE, names[3])
    events += poll_until(after, lambda ev: kinds(ev).count(E.SUCCEEDED) == 2)
    finals = {e.key: e.kind for e in events if e.kind in (E.SUCCEEDED, E.FAILED)}
    assert finals == {
        keys[0]: E.SUCCEEDED,
        keys[1]: E.FAILED,
        keys[2]: E.SUCCEEDED,
        keys[3]: E.SUCCEEDED,
    }
    wait_until(lambda: apiserver.objects("pods", NAMESPACE) == [])
    assert after.tracked == frozenset()


def test_adopt_skips_pods_being_deleted(
    apiserver: FakeApiServer, kubelet: FakeKubelet, make_launcher: LauncherFactory
) -> None:
    old = make_launcher(settings_for(GpuMode.ENV_PIN, executor_id="old"))
    req = launch_request()
    old.launch(req)
    kubelet.run(NAMESPACE, naming.pod_name(req.key))
    old.close()
    apiserver.delete("pods", NAMESPACE, naming.pod_name(req.key))
    new = make_launcher(settings_for(GpuMode.ENV_PIN, executor_id="new"))
    assert new.adopt([req.key], NAMESPACE) == []
