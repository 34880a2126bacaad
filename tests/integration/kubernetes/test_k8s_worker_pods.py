"""`WorkerPodLauncher` against the fake API server, with real agents in real pods.

`ProcessKubelet` runs each worker pod's container (``python -m airflow_fate.launch.agent``,
which starts the device worker) as local processes with the pod's environment, its own
loopback IP and the agent key from the Secret the launcher created. Tasks are small
commands standing in for the Task SDK (the Airflow end-to-end test runs real ones), so
these tests follow the pod lifecycle: create, reuse, replace for a shard group, wait for
a running task, expire, faults, restart adoption, and refusal of unsigned requests.
"""

from __future__ import annotations

import http.client
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("kubernetes", reason="the [kubernetes] extra is not installed")
from fake_apiserver import FakeApiServer
from k8s_testkit import NAMESPACE, poll_until, settings_for, task_key, wait_until
from process_kubelet import ProcessKubelet, image_environment

from airflow_fate.launch.agent.auth import Secret
from airflow_fate.launch.agent.messages import TaskSubmission, WireKey
from airflow_fate.launch.inventory import Inventory, load_inventory
from airflow_fate.launch.kubernetes import naming
from airflow_fate.launch.kubernetes.client import api_client_for_host
from airflow_fate.launch.kubernetes.settings import GpuMode, LauncherSettings, WorkerPodSettings
from airflow_fate.launch.kubernetes.worker_pods import WorkerPodLauncher
from airflow_fate.launch.types import (
    DevicesLost,
    EventKind,
    GpuPlacement,
    LaunchEvent,
    LaunchRequest,
    TaskEvent,
    TaskKey,
    WorkerStarted,
)

E = EventKind
NODE = "gpu-node-a"
CLUSTER = """
version: 1
gpu_types: {T4: {memory_gib: 16, relative_speed: 0.2}}
interconnect: {host_to_gpu_gbps: 25, nvlink_gbps: 300, local_disk_gbps: 3, remote_store_gbps: 1}
nodes:
  - {name: gpu-node-a, gpu_type: T4, gpu_count: 2, host_cache_gib: 64, network_gbps: 25}
  - {name: gpu-node-z, gpu_type: T4, gpu_count: 1, host_cache_gib: 64, network_gbps: 25}
pod_start_s: 3
"""
DEVICES = """
version: 1
nodes:
  gpu-node-a:
    - {index: 0, uuid: GPU-a-0, pci_bus_id: "00000000:11:00.0"}
    - {index: 1, uuid: GPU-a-1, pci_bus_id: "00000000:12:00.0"}
  gpu-node-z:
    - {index: 0, uuid: GPU-z-0, pci_bus_id: "00000000:11:00.0"}
"""

Make = Callable[..., WorkerPodLauncher]


@pytest.fixture
def inventory(tmp_path: Path) -> Inventory:
    (tmp_path / "cluster.yaml").write_text(CLUSTER, encoding="utf-8")
    (tmp_path / "devices.yaml").write_text(DEVICES, encoding="utf-8")
    return load_inventory(tmp_path / "cluster.yaml", tmp_path / "devices.yaml")


@pytest.fixture
def work_dir() -> Iterator[Path]:
    """Short, so Unix socket paths inside the "pods" fit."""
    path = Path(tempfile.mkdtemp(prefix="fate-wp-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def pods(apiserver: FakeApiServer, tmp_path: Path) -> Iterator[ProcessKubelet]:
    kubelet = ProcessKubelet(
        apiserver, image_environment(tmp_path / "container"), tmp_path / "pod-logs", {NODE}
    )
    with kubelet:
        yield kubelet
    assert not kubelet.errors, kubelet.errors


def worker_settings(
    work_dir: Path, mode: GpuMode = GpuMode.ENV_PIN, **worker: Any
) -> LauncherSettings:
    base = settings_for(mode)
    options: dict[str, Any] = {
        "platform": "cpu",
        "agent_port": 18790,
        "work_dir": str(work_dir),
        "poll_interval_s": 0.1,
        "start_timeout_s": 60.0,
        "agent_timeout_s": 2.0,
        "prestart": False,  # pods on first use, so each test sees exactly its own
    }
    options.update(worker)
    return base.model_copy(update={"worker": WorkerPodSettings(**options)})


@pytest.fixture
def make(
    apiserver: FakeApiServer, inventory: Inventory, work_dir: Path, pods: ProcessKubelet
) -> Iterator[Make]:
    made: list[WorkerPodLauncher] = []

    def factory(idle_s: float = 3600.0, **kwargs: Any) -> WorkerPodLauncher:
        settings = kwargs.pop("settings", None) or worker_settings(work_dir)
        launcher = WorkerPodLauncher(
            settings,
            inventory,
            stage_timeout_s=60.0,
            worker_idle_s=idle_s,
            api_client_factory=lambda: api_client_for_host(apiserver.url),
            **kwargs,
        )
        launcher.start()
        made.append(launcher)
        return launcher

    yield factory
    for launcher in made:
        launcher.close(detach=True, join_timeout_s=0.5)


def request(key: TaskKey, gpus: tuple[int, ...], script: str) -> LaunchRequest:
    """A task that runs ``script`` with ``sh`` inside its worker pod."""
    uuids = tuple(f"GPU-a-{i}" for i in gpus)
    return LaunchRequest(
        key=key,
        command=("sh", "-c", script),
        placement=GpuPlacement(node=NODE, gpu_indices=gpus, gpu_uuids=uuids),
    )


def ended(key: TaskKey) -> Callable[[list[TaskEvent]], bool]:
    return lambda events: any(
        isinstance(e, LaunchEvent) and e.key == key and e.kind in (E.SUCCEEDED, E.FAILED)
        for e in events
    )


def of(events: list[TaskEvent], key: TaskKey) -> list[LaunchEvent]:
    return [e for e in events if isinstance(e, LaunchEvent) and e.key == key]


def created_pods(apiserver: FakeApiServer) -> list[str]:
    with apiserver.store.cond:
        return [
            e.new["metadata"]["name"]
            for e in apiserver.store.history
            if e.type == "ADDED" and e.resource == "pods"
        ]


def wait_events(
    launcher: WorkerPodLauncher, done: Callable[[list[TaskEvent]], bool], timeout_s: float = 60
) -> list[TaskEvent]:
    return poll_until(launcher, done, timeout_s)  # type: ignore[arg-type]


# -- create, reuse ----------------------------------------------------------------------


def test_tasks_on_one_gpu_share_one_worker_pod(
    make: Make, apiserver: FakeApiServer, pods: ProcessKubelet, work_dir: Path
) -> None:
    launcher = make()
    first, second = task_key("draft"), task_key("revise")
    launcher.launch(request(first, (1,), 'echo "$FATE_WORKER_SOCKET $FATE_DEVICE_IDS"'))
    events = wait_events(launcher, ended(first))
    assert [e.kind for e in of(events, first)] == [E.RUNNING, E.SUCCEEDED]
    [started] = [e for e in events if isinstance(e, WorkerStarted)]
    assert (started.node, started.gpu_indices) == (NODE, (1,)) and started.seconds > 0
    running = of(events, first)[0]
    name = naming.worker_pod_name(NODE, (1,))
    assert (running.pod_name, running.node, running.gpu_uuids) == (name, NODE, ("GPU-a-1",))

    launcher.launch(request(second, (1,), "exit 3"))
    events = wait_events(launcher, ended(second))
    assert not [e for e in events if isinstance(e, WorkerStarted)], "the pod was reused"
    [failed] = [e for e in of(events, second) if e.kind is E.FAILED]
    assert failed.reason == f"task process in worker pod {name} on node {NODE} exited with code 3"
    assert created_pods(apiserver) == [name], "one pod served both tasks"

    pod = apiserver.get("pods", NAMESPACE, name)
    assert pod is not None
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "gpu-worker"
    env = pods.runs[(NAMESPACE, name)].env
    assert env["NVIDIA_VISIBLE_DEVICES"] == "GPU-a-1"
    secret = apiserver.get("secrets", NAMESPACE, "airflow-fate-agent")
    assert secret is not None and "FATE_AGENT_SECRET" in env, "the key came from the Secret"
    assert launcher.live_devices() == {1}
    socket_path = f"{work_dir}/{name}/sockets/worker.sock"
    assert (work_dir / name / "tasks").is_dir()
    logs = list((work_dir / name / "tasks").glob("*.log"))
    assert any(f"{socket_path} GPU-a-1" in p.read_text() for p in logs)


def test_a_shard_group_replaces_idle_pods_but_never_under_a_running_task(
    make: Make, apiserver: FakeApiServer
) -> None:
    launcher = make()
    on0, on1, sharded = task_key("a"), task_key("b"), task_key("sharded")
    launcher.launch(request(on0, (0,), "true"))
    wait_events(launcher, ended(on0))
    launcher.launch(request(on1, (1,), "sleep 4"))
    events = wait_events(launcher, lambda ev: any(e.kind is E.RUNNING for e in of(ev, on1)))
    launcher.launch(request(sharded, (0, 1), "echo $FATE_GPU_INDICES"))
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        events += launcher.poll()
        time.sleep(0.05)
    assert not of(events, on1)[1:], "the task on GPU 1 still runs"
    assert not of(events, sharded), "no pod replaced while GPU 1 runs a task"
    assert naming.worker_pod_name(NODE, (0, 1)) not in created_pods(apiserver)
    single = {naming.worker_pod_name(NODE, (g,)) for g in (0, 1)}
    assert single <= {p["metadata"]["name"] for p in apiserver.objects("pods")}

    events += wait_events(launcher, ended(sharded))
    assert [e.kind for e in of(events, on1)] == [E.RUNNING, E.SUCCEEDED]
    assert [e.kind for e in of(events, sharded)] == [E.RUNNING, E.SUCCEEDED]
    assert not [e for e in events if isinstance(e, DevicesLost)], "replacing is no loss"
    wait_until(lambda: not single & {p["metadata"]["name"] for p in apiserver.objects("pods")})
    assert launcher.live_devices() == {0, 1}
    assert launcher.pool.holding((NODE, (0, 1))) is not None


def test_idle_pods_expire(make: Make, apiserver: FakeApiServer) -> None:
    launcher = make(idle_s=1.0)
    key = task_key()
    launcher.launch(request(key, (0,), "true"))
    wait_events(launcher, ended(key))
    name = naming.worker_pod_name(NODE, (0,))

    def expired() -> bool:
        launcher.poll()
        return apiserver.get("pods", NAMESPACE, name) is None

    wait_until(expired, timeout_s=30)
    assert launcher.live_devices() == set()


# -- faults -----------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["deleted", "oom-killed"])
def test_a_worker_pod_lost_mid_task_fails_the_try_and_drops_its_state(
    fault: str, make: Make, apiserver: FakeApiServer, pods: ProcessKubelet
) -> None:
    launcher = make()
    key = task_key()
    launcher.launch(request(key, (1,), "sleep 60"))
    wait_events(launcher, lambda ev: any(e.kind is E.RUNNING for e in of(ev, key)))
    name = naming.worker_pod_name(NODE, (1,))
    if fault == "deleted":
        apiserver.delete("pods", NAMESPACE, name, grace=1)
    else:
        pods.oom_kill(NAMESPACE, name)
    events = wait_events(launcher, ended(key), timeout_s=30)
    [failed] = [e for e in of(events, key) if e.kind is E.FAILED]
    assert failed.reason.startswith(f"worker pod {name} on node {NODE} ")
    assert ("OOMKilled" if fault == "oom-killed" else "was deleted") in failed.reason
    if not any(isinstance(e, DevicesLost) for e in events):
        events += wait_events(launcher, lambda ev: any(isinstance(e, DevicesLost) for e in ev))
    [lost] = [e for e in events if isinstance(e, DevicesLost)]
    assert (lost.node, lost.gpu_indices) == (NODE, (1,))
    assert events.index(failed) < events.index(lost), "the try fails first"

    retry = task_key(try_number=2)
    launcher.launch(request(retry, (1,), "true"))
    events = wait_events(launcher, ended(retry))
    assert of(events, retry)[-1].kind is E.SUCCEEDED, "a new pod takes the retry"


def test_a_pod_that_cannot_start_fails_its_queued_tries(make: Make, work_dir: Path) -> None:
    settings = worker_settings(work_dir, start_timeout_s=1.0)
    launcher = make(settings=settings)
    key = task_key()
    # gpu-node-z is in the inventory, but no kubelet serves it: the pod stays Pending.
    unreachable = LaunchRequest(
        key=key,
        command=("true",),
        placement=GpuPlacement(node="gpu-node-z", gpu_indices=(0,), gpu_uuids=("GPU-z-0",)),
    )
    launcher.launch(unreachable)
    events = wait_events(launcher, ended(key), timeout_s=30)
    [failed] = of(events, key)
    name = naming.worker_pod_name("gpu-node-z", (0,))
    assert failed.kind is E.FAILED
    assert failed.reason.startswith(
        f"worker pod {name} on node gpu-node-z did not start within 1 s"
    )
    assert "node selector" in failed.reason, "the scheduler's reason is passed on"
    assert not [e for e in events if isinstance(e, DevicesLost)], "it never held anything"


# -- restart ----------------------------------------------------------------------------


def test_a_restarted_scheduler_adopts_pods_and_their_tasks(
    make: Make, apiserver: FakeApiServer
) -> None:
    first = make()
    done, running = task_key("done"), task_key("running")
    first.launch(request(done, (0,), "true"))
    wait_events(first, ended(done))

    def asked_what_pod_0_holds() -> bool:
        first.poll()
        return (0,) in first.held_models()

    wait_until(asked_what_pod_0_holds, timeout_s=60)
    first.launch(request(running, (1,), "sleep 3"))
    wait_events(first, lambda ev: any(e.kind is E.RUNNING for e in of(ev, running)))
    first.close(detach=True)

    second = make(settings=first.settings.model_copy(update={"executor_id": "scheduler-2"}))
    assert second.live_devices() == {0, 1}, "both pods survived and answer"
    held = second.held_models()
    assert held.get((0,)) == (), "an idle pod's worker was asked what it holds"
    assert second.adopt([running, task_key("never-launched")]) == [running]
    events = wait_events(second, ended(running))
    assert [e.kind for e in of(events, running)] == [E.ADOPTED, E.SUCCEEDED]
    for name in (naming.worker_pod_name(NODE, (g,)) for g in (0, 1)):
        pod = apiserver.get("pods", NAMESPACE, name)
        assert pod is not None
        assert pod["metadata"]["labels"][naming.EXECUTOR_LABEL] == "scheduler-2"
    assert len(created_pods(apiserver)) == 2, "no pod created twice"


def test_prestart_starts_a_pod_per_gpu_that_serves_the_first_stage(
    make: Make, apiserver: FakeApiServer, work_dir: Path
) -> None:
    launcher = make(settings=worker_settings(work_dir, prestart=True))
    singles = [naming.worker_pod_name(NODE, (g,)) for g in (0, 1)]
    unserved = naming.worker_pod_name("gpu-node-z", (0,))
    assert sorted(created_pods(apiserver)) == sorted([*singles, unserved]), (
        "one pod per GPU, created when the scheduler starts, before any work"
    )
    events = wait_events(
        launcher, lambda ev: len([e for e in ev if isinstance(e, WorkerStarted)]) == 2
    )
    started = sorted((e.node, e.gpu_indices) for e in events if isinstance(e, WorkerStarted))
    assert started == [(NODE, (0,)), (NODE, (1,))], "each start is measured"
    assert launcher.live_devices() == {0, 1}

    key = task_key()
    launcher.launch(request(key, (1,), "true"))
    events = wait_events(launcher, ended(key))
    assert [e.kind for e in of(events, key)] == [E.RUNNING, E.SUCCEEDED]
    assert of(events, key)[0].pod_name == singles[1], "the pre-started pod took it"
    assert not [e for e in events if isinstance(e, WorkerStarted)], "no pod started for it"
    assert len(created_pods(apiserver)) == 3


def test_prestart_after_a_restart_keeps_the_shard_groups_it_took_over(
    make: Make, apiserver: FakeApiServer, work_dir: Path
) -> None:
    first = make()
    key = task_key("sharded")
    first.launch(request(key, (0, 1), "true"))
    wait_events(first, ended(key))
    first.close(detach=True)

    settings = worker_settings(work_dir, prestart=True)
    second = make(settings=settings.model_copy(update={"executor_id": "scheduler-2"}))
    group = naming.worker_pod_name(NODE, (0, 1))
    assert created_pods(apiserver) == [group, naming.worker_pod_name("gpu-node-z", (0,))], (
        "only the GPU no pod held got a pod; the group's pod was taken over"
    )
    assert second.pool.holding((NODE, (0, 1))) is not None


def test_close_without_detach_deletes_the_pods(make: Make, apiserver: FakeApiServer) -> None:
    launcher = make()
    key = task_key()
    launcher.launch(request(key, (0,), "true"))
    wait_events(launcher, ended(key))
    launcher.close()
    wait_until(lambda: not apiserver.objects("pods", NAMESPACE), timeout_s=30)


# -- security -----------------------------------------------------------------------------


def test_an_unsigned_or_forged_request_to_an_agent_runs_nothing(
    make: Make, pods: ProcessKubelet
) -> None:
    launcher = make()
    key = task_key()
    launcher.launch(request(key, (0,), "true"))
    wait_events(launcher, ended(key))
    run = pods.runs[(NAMESPACE, naming.worker_pod_name(NODE, (0,)))]
    marker = Path(run.env["HOME"]) / "forged-ran"
    body = (
        TaskSubmission(key=WireKey.of(task_key("forged")), command=["sh", "-c", f"touch {marker}"])
        .model_dump_json()
        .encode()
    )
    forger = Secret("not-the-key-not-the-key-not-the-key")
    for headers in ({}, forger.headers("POST", "/v1/tasks", body, time.time())):
        conn = http.client.HTTPConnection(run.ip, 18790, timeout=5)
        conn.request("POST", "/v1/tasks", body=body, headers=headers)
        response = conn.getresponse()
        assert response.status == 401
        assert json.loads(response.read()) == {"error": "unauthorized"}
        conn.close()
    time.sleep(0.5)
    assert not marker.exists(), "the refused request ran nothing"
    assert "refused POST /v1/tasks" in run.log()
    assert "not-the-key" not in run.log()
