"""`ProcessKubelet`, the end-to-end test's node agent, on its own (fast: shell commands).

The end-to-end test only sees pods that succeed; the exit-code, scheduling and deletion
paths the kubelet also has are pinned down here.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("kubernetes", reason="the [kubernetes] extra is not installed")
from fake_apiserver import FakeApiServer, Json
from k8s_testkit import (
    NAMESPACE,
    LauncherFactory,
    has,
    poll_until,
    settings_for,
    task_key,
    wait_until,
)
from process_kubelet import POD_MARKER_ENV, ProcessKubelet

from airflow_fate.launch.kubernetes import naming
from airflow_fate.launch.kubernetes.settings import GpuMode
from airflow_fate.launch.types import EventKind, GpuPlacement, LaunchRequest

NODE = "gpu-node-a"


@pytest.fixture
def process_kubelet(apiserver: FakeApiServer, tmp_path: Path) -> Iterator[ProcessKubelet]:
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    with ProcessKubelet(apiserver, base, tmp_path / "logs", nodes={NODE}) as kubelet:
        yield kubelet
    assert not kubelet.errors, kubelet.errors


def _pod(name: str, script: str, node: str = NODE, env: dict[str, str] | None = None) -> Json:
    return {
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "restartPolicy": "Never",
            "nodeSelector": {"kubernetes.io/hostname": node},
            "containers": [
                {
                    "name": "base",
                    "image": "stage:1",
                    "command": ["sh", "-c"],
                    "args": [script],
                    "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
                }
            ],
        },
    }


def _phase(apiserver: FakeApiServer, name: str) -> str | None:
    pod = apiserver.get("pods", NAMESPACE, name)
    return None if pod is None else pod["status"].get("phase")


def test_pods_run_with_their_env_and_end_with_their_exit_code(
    apiserver: FakeApiServer, process_kubelet: ProcessKubelet
) -> None:
    apiserver.create("pods", _pod("ok", 'echo "hello $WHO from $HOME"', env={"WHO": "pod"}))
    apiserver.create("pods", _pod("bad", "echo failing >&2; exit 3"))
    wait_until(
        lambda: _phase(apiserver, "ok") == "Succeeded" and _phase(apiserver, "bad") == "Failed"
    )

    ok = apiserver.get("pods", NAMESPACE, "ok")
    assert ok is not None and ok["spec"]["nodeName"] == NODE
    assert (
        apiserver.store.logs[(NAMESPACE, "ok")]
        == f"hello pod from {process_kubelet.base_env['HOME']}\n"
    )
    bad = apiserver.get("pods", NAMESPACE, "bad")
    assert bad is not None
    terminated = bad["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 3
    assert apiserver.store.logs[(NAMESPACE, "bad")] == "failing\n"
    ok_run = process_kubelet.runs[(NAMESPACE, "ok")]
    assert ok_run.env == {
        **process_kubelet.base_env,
        "WHO": "pod",
        POD_MARKER_ENV: f"{NAMESPACE}/ok/{ok['metadata']['uid']}",
    }


def test_a_pod_pinned_to_an_unknown_node_is_unschedulable_and_never_runs(
    apiserver: FakeApiServer, process_kubelet: ProcessKubelet
) -> None:
    apiserver.create("pods", _pod("lost", "true", node="no-such-node"))

    def unschedulable() -> bool:
        pod = apiserver.get("pods", NAMESPACE, "lost") or {}
        conditions = pod.get("status", {}).get("conditions") or []
        return any(c.get("reason") == "Unschedulable" for c in conditions)

    wait_until(unschedulable)
    assert _phase(apiserver, "lost") == "Pending"
    assert not process_kubelet.runs


def test_a_cancelled_stage_pod_has_its_process_stopped_and_is_removed(
    apiserver: FakeApiServer, process_kubelet: ProcessKubelet, make_launcher: LauncherFactory
) -> None:
    launcher = make_launcher(settings_for(GpuMode.ENV_PIN))
    key = task_key()
    launcher.launch(
        LaunchRequest(
            key=key,
            command=("sleep", "60"),
            placement=GpuPlacement(node=NODE, gpu_indices=(0,), gpu_uuids=("GPU-a-0",)),
        )
    )
    poll_until(launcher, has(EventKind.RUNNING, key))
    name = naming.pod_name(key)
    run = process_kubelet.runs[(NAMESPACE, name)]
    assert run.argv == ["sleep", "60"]
    assert run.env["NVIDIA_VISIBLE_DEVICES"] == "GPU-a-0"

    launcher.cancel(key)
    wait_until(lambda: apiserver.get("pods", NAMESPACE, name) is None, timeout_s=15)
    assert run.killed and run.popen.poll() is not None
    assert process_kubelet.alive() == []


def test_a_dra_pod_gets_the_devices_its_claim_selects(
    apiserver: FakeApiServer, process_kubelet: ProcessKubelet, make_launcher: LauncherFactory
) -> None:
    launcher = make_launcher(settings_for(GpuMode.DRA))
    key = task_key()
    uuids = ("GPU-b-1", "GPU-b-0")
    launcher.launch(
        LaunchRequest(
            key=key,
            command=("sh", "-c", "echo $NVIDIA_VISIBLE_DEVICES"),
            placement=GpuPlacement(node=NODE, gpu_indices=(1, 0), gpu_uuids=uuids),
        )
    )
    poll_until(launcher, has(EventKind.SUCCEEDED, key))
    run = process_kubelet.runs[(NAMESPACE, naming.pod_name(key))]
    assert run.visible_devices == uuids
    assert run.log() == "GPU-b-1,GPU-b-0\n"


def test_a_pod_the_kubelet_cannot_run_fails_once(
    apiserver: FakeApiServer, process_kubelet: ProcessKubelet
) -> None:
    pod = _pod("secret", "true")
    pod["spec"]["containers"][0]["env"] = [
        {"name": "TOKEN", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}
    ]
    apiserver.create("pods", pod)
    wait_until(lambda: _phase(apiserver, "secret") == "Failed")
    failed = apiserver.get("pods", NAMESPACE, "secret")
    assert failed is not None
    state = failed["status"]["containerStatuses"][0]["state"]["terminated"]
    assert state["reason"] == "RunContainerError"
    assert not process_kubelet.runs
    assert len(process_kubelet.errors) == 1 and "TOKEN" in process_kubelet.errors[0]
    process_kubelet.errors.clear()


def test_env_from_secrets_and_the_downward_api_and_an_ip_per_pod(
    apiserver: FakeApiServer, process_kubelet: ProcessKubelet
) -> None:
    pods = []
    for name in ("left", "right"):
        pod = _pod(name, 'echo "$TOKEN $MY_IP $MY_NAME"')
        pod["spec"]["containers"][0]["env"] = [
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "agent", "key": "token"}}},
            {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "MY_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ]
        pods.append(apiserver.create("pods", pod))
    time.sleep(0.5)
    assert not process_kubelet.runs, "a container waits for its Secret"
    secret = {
        "metadata": {"name": "agent", "namespace": NAMESPACE},
        "data": {"token": base64.b64encode(b"hush").decode()},
    }
    apiserver.create("secrets", secret)
    wait_until(lambda: {_phase(apiserver, "left"), _phase(apiserver, "right")} == {"Succeeded"})
    runs = [process_kubelet.runs[(NAMESPACE, name)] for name in ("left", "right")]
    assert runs[0].ip != runs[1].ip and all(r.ip.startswith("127.") for r in runs)
    for run in runs:
        assert run.log() == f"hush {run.ip} {run.name}\n"
    seen = apiserver.get("pods", NAMESPACE, "left")
    assert seen is not None and seen["status"]["podIP"] == runs[0].ip


def _orphan_pid(run_log: Path) -> int:
    deadline = time.monotonic() + 10
    while not run_log.read_text().strip():
        assert time.monotonic() < deadline, "no orphan pid logged"
        time.sleep(0.05)
    return int(run_log.read_text().split()[0])


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


# A child in a session of its own outlives its pod's main process unless the kubelet ends
# every process of the pod, as a container runtime does.
_ORPHAN = "setsid sleep 60 & echo $!; "


def test_every_process_of_a_pod_ends_with_it(
    apiserver: FakeApiServer, process_kubelet: ProcessKubelet
) -> None:
    apiserver.create("pods", _pod("short", _ORPHAN + "sleep 0.2"))
    wait_until(lambda: _phase(apiserver, "short") == "Succeeded", timeout_s=15)
    orphan = _orphan_pid(process_kubelet.runs[(NAMESPACE, "short")].log_path)
    wait_until(lambda: _gone(orphan))

    apiserver.create("pods", _pod("deleted", _ORPHAN + "sleep 60"))
    wait_until(lambda: (NAMESPACE, "deleted") in process_kubelet.runs)
    orphan = _orphan_pid(process_kubelet.runs[(NAMESPACE, "deleted")].log_path)
    apiserver.delete("pods", NAMESPACE, "deleted", grace=1)
    wait_until(lambda: apiserver.get("pods", NAMESPACE, "deleted") is None, timeout_s=15)
    wait_until(lambda: _gone(orphan))


def test_oom_kill_fails_the_pod_as_oomkilled(
    apiserver: FakeApiServer, process_kubelet: ProcessKubelet
) -> None:
    apiserver.create("pods", _pod("hungry", _ORPHAN + "sleep 60"))
    wait_until(lambda: _phase(apiserver, "hungry") == "Running")
    run = process_kubelet.runs[(NAMESPACE, "hungry")]
    orphan = _orphan_pid(run.log_path)
    process_kubelet.oom_kill(NAMESPACE, "hungry")
    wait_until(lambda: _phase(apiserver, "hungry") == "Failed", timeout_s=15)
    pod = apiserver.get("pods", NAMESPACE, "hungry")
    assert pod is not None
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["reason"], terminated["exitCode"]) == ("OOMKilled", 137)
    wait_until(lambda: _gone(orphan))
