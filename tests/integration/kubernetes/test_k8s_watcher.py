"""The pod watcher driven one cycle at a time (no thread), against the fake API server."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

pytest.importorskip("kubernetes", reason="the [kubernetes] extra is not installed")
from fake_apiserver import FakeApiServer, Fault
from k8s_testkit import NAMESPACE
from kubernetes import client

from airflow_fate.launch.kubernetes.client import api_client_for_host
from airflow_fate.launch.kubernetes.settings import RetrySettings
from airflow_fate.launch.kubernetes.watcher import Observation, PodEvent, PodSnapshot, PodWatcher


def _pod(name: str, owner: str = "me") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"owner": owner}},
        "spec": {"containers": [{"name": "base", "image": "x"}]},
    }


class Recorder:
    def __init__(self) -> None:
        self.seen: list[Observation] = []
        self.waits: list[float] = []

    def events(self) -> list[tuple[str, str]]:
        return [(o.type, o.pod["metadata"]["name"]) for o in self.seen if isinstance(o, PodEvent)]

    def snapshots(self) -> list[list[str]]:
        return [
            [p["metadata"]["name"] for p in o.pods] for o in self.seen if isinstance(o, PodSnapshot)
        ]

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        return False


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def watcher(apiserver: FakeApiServer, recorder: Recorder) -> PodWatcher:
    return PodWatcher(
        api_client_for_host(apiserver.url),
        NAMESPACE,
        "owner=me",
        recorder.seen.append,
        watch_timeout_s=1,
        request_timeout_s=5,
        retry=RetrySettings(base_delay_s=0.25, max_delay_s=1.0),
        wait=recorder.wait,
    )


def test_first_cycle_lists_then_watches_from_the_list_version(
    apiserver: FakeApiServer, watcher: PodWatcher, recorder: Recorder
) -> None:
    apiserver.create("pods", _pod("a"))
    apiserver.create("pods", _pod("not-mine", owner="someone-else"))
    watcher.run_once()
    assert recorder.snapshots() == [["a"]]
    watch = apiserver.watch_requests()[0]
    snapshot = recorder.seen[0]
    assert isinstance(snapshot, PodSnapshot)
    assert watch.query["resourceVersion"] == snapshot.resource_version
    assert watch.query["timeoutSeconds"] == "1"
    assert watch.query["labelSelector"] == "owner=me"


def test_later_cycles_resume_without_relisting(
    apiserver: FakeApiServer, watcher: PodWatcher, recorder: Recorder
) -> None:
    watcher.run_once()
    apiserver.create("pods", _pod("b"))
    watcher.run_once()
    assert recorder.events() == [("ADDED", "b")]
    assert watcher.relists == 1
    assert (
        watcher.resource_version
        == apiserver.get("pods", NAMESPACE, "b")["metadata"]["resourceVersion"]
    )


def test_410_forces_a_relist(
    apiserver: FakeApiServer, watcher: PodWatcher, recorder: Recorder
) -> None:
    watcher.run_once()
    apiserver.create("pods", _pod("c"))
    apiserver.compact()
    watcher.run_once()  # watch from the old version: 410 Gone
    assert watcher.resource_version is None
    watcher.run_once()  # re-list sees what happened meanwhile
    assert recorder.snapshots() == [[], ["c"]]
    assert watcher.relists == 2


@pytest.mark.parametrize(
    ("fault", "expected_wait"),
    [
        pytest.param(Fault("GET", "pods", 500, watch=True), 0.25, id="500-backoff"),
        pytest.param(Fault("GET", "pods", 429, watch=True, retry_after="3"), 3.0, id="429"),
    ],
)
def test_watch_errors_back_off_and_keep_the_version(
    apiserver: FakeApiServer,
    watcher: PodWatcher,
    recorder: Recorder,
    fault: Fault,
    expected_wait: float,
) -> None:
    watcher.run_once()
    rv = watcher.resource_version
    apiserver.inject(fault)
    watcher.run_once()
    assert recorder.waits == [expected_wait]
    assert watcher.resource_version == rv
    assert watcher.failures == 1
    apiserver.create("pods", _pod("d"))
    watcher.run_once()
    assert recorder.events() == [("ADDED", "d")]
    assert watcher.failures == 0


def test_backoff_grows_while_the_list_keeps_failing(
    apiserver: FakeApiServer, watcher: PodWatcher, recorder: Recorder
) -> None:
    apiserver.inject(Fault("GET", "pods", 503, times=4, watch=False))
    for _ in range(4):
        watcher.run_once()
    assert recorder.waits == [0.25, 0.5, 1.0, 1.0]
    watcher.run_once()
    assert recorder.snapshots() == [[]]


def test_forbidden_list_is_retried_not_fatal_for_the_thread(
    apiserver: FakeApiServer, watcher: PodWatcher, recorder: Recorder
) -> None:
    # RBAC fixed later must be picked up without restarting the scheduler.
    apiserver.inject(Fault("GET", "pods", 403, watch=False))
    watcher.run_once()
    assert recorder.waits == [0.25]
    watcher.run_once()
    assert recorder.snapshots() == [[]]


def test_thread_stops_promptly_while_a_watch_is_open(apiserver: FakeApiServer) -> None:
    seen: list[Observation] = []
    w = PodWatcher(
        api_client_for_host(apiserver.url),
        NAMESPACE,
        "owner=me",
        seen.append,
        watch_timeout_s=30,
        request_timeout_s=5,
        retry=RetrySettings(),
    )
    w.start()
    deadline = time.monotonic() + 5
    while apiserver.active_watches == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert apiserver.active_watches == 1
    started = time.monotonic()
    w.stop(join_timeout_s=5)
    assert not w.alive
    assert time.monotonic() - started < 1.0


def test_thread_stops_promptly_when_stopped_while_the_watch_request_is_in_flight(
    apiserver: FakeApiServer,
) -> None:
    # The race CI once lost: `stop` runs after the server took the watch but before the
    # client holds the response, so `stop` finds nothing to cut. The watcher must then
    # cut the stream itself instead of reading until the server-side timeout (30 s).
    w = PodWatcher(
        api_client_for_host(apiserver.url),
        NAMESPACE,
        "owner=me",
        lambda _: None,
        watch_timeout_s=30,
        request_timeout_s=5,
        retry=RetrySettings(),
    )
    real_list = w._core.list_namespaced_pod
    stopper: list[threading.Thread] = []

    def list_then_stop(*args: Any, **kwargs: Any) -> Any:
        response = real_list(*args, **kwargs)
        if kwargs.get("watch"):
            stopper.append(threading.Thread(target=w.stop, kwargs={"join_timeout_s": 5}))
            stopper[0].start()
            time.sleep(0.2)  # `stop` has run by now and found no response
        return response

    w._core.list_namespaced_pod = list_then_stop
    w.start()
    deadline = time.monotonic() + 5
    while not stopper and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stopper, "the watcher never opened a watch"
    stopper[0].join(10)
    assert not w.alive


def test_client_has_no_hidden_urllib3_retries(apiserver: FakeApiServer) -> None:
    # urllib3 would otherwise sleep out a Retry-After inside the call, blocking the loop.
    apiserver.inject(Fault("GET", "pods", 429, retry_after="30", watch=False))
    api = client.CoreV1Api(api_client_for_host(apiserver.url))
    started = time.monotonic()
    with pytest.raises(client.exceptions.ApiException) as err:
        api.list_namespaced_pod(NAMESPACE)
    assert err.value.status == 429
    assert time.monotonic() - started < 5
