"""`LocalTaskLauncher`: a stage's task process gets its placement; workers per device set."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

from airflow_fate.launch.local_tasks import LocalTaskLauncher
from airflow_fate.launch.processes import pid_alive, read_pid_file
from airflow_fate.launch.types import (
    DevicesLost,
    EventKind,
    GpuPlacement,
    LaunchEvent,
    LaunchRequest,
)
from airflow_fate.runtime.binding import DeviceBinding
from tests.conftest import make_cluster
from tests.unit.executor.conftest import key

SHOW_ENV = (
    "import json, os; print(json.dumps({k: v for k, v in os.environ.items() "
    "if k.startswith('FATE_') or k == 'CUDA_VISIBLE_DEVICES'}))"
)


def _launcher(run_dir: Path) -> LocalTaskLauncher:
    cluster = make_cluster([("local", "big", 2)])
    bindings = [
        DeviceBinding(ids=[f"cpu{i}"], platform="cpu", memory_bytes=1 << 30, prefix_bytes=0)
        for i in range(2)
    ]
    return LocalTaskLauncher(cluster, bindings, run_dir, models_path="/m.yaml", worker_idle_s=30)


def _pid(pid_file: Path) -> int:
    recorded = read_pid_file(pid_file)
    assert recorded is not None, pid_file
    return recorded[0]


def _until_done(launcher: LocalTaskLauncher, timeout_s: float = 60.0) -> list[EventKind]:
    """The kinds of the task events until one succeeds; any other event fails the test
    (a `DevicesLost` here would be one no test expects)."""
    kinds: list[EventKind] = []
    deadline = time.monotonic() + timeout_s
    while EventKind.SUCCEEDED not in kinds and time.monotonic() < deadline:
        for event in launcher.poll(0.2):
            assert isinstance(event, LaunchEvent), event
            kinds.append(event.kind)
    return kinds


def test_task_process_gets_the_placement_and_worker(tmp_path: Path) -> None:
    launcher = _launcher(tmp_path)
    try:
        request = LaunchRequest(key("t"), ("python", "-c", SHOW_ENV), GpuPlacement("local", (1,)))
        launcher.launch(request)
        assert _until_done(launcher) == [EventKind.RUNNING, EventKind.SUCCEEDED]
        log = next((tmp_path / "tasks").glob("t-*.log")).read_text()
        env = json.loads(log.strip().splitlines()[-1])
        assert env["FATE_NODE"] == "local" and env["FATE_GPU_INDICES"] == "1"
        assert env["FATE_DEVICE_IDS"] == "cpu1" and env["FATE_MODELS"] == "/m.yaml"
        assert env["FATE_WORKER_SOCKET"] == str(tmp_path / "w1.sock")
        assert env["CUDA_VISIBLE_DEVICES"] == ""
        assert launcher.live_devices() == {1}
    finally:
        launcher.close()
    assert not list(tmp_path.glob("w*.pid"))


def test_a_shard_group_gets_its_own_worker(tmp_path: Path) -> None:
    """The single-GPU workers it replaces are stopped, and not reported as lost.

    The planner placed the group knowing its worker replaces theirs (and drops what
    they held); a `DevicesLost` for GPUs 0 and 1 would also drop what the group's new
    worker is about to hold.
    """
    launcher = _launcher(tmp_path)
    try:
        launcher.start()
        singles = [_pid(tmp_path / f"w{i}.pid") for i in range(2)]
        request = LaunchRequest(key("g"), ("python", "-c", "pass"), GpuPlacement("local", (0, 1)))
        launcher.launch(request)
        assert _until_done(launcher)[-1] is EventKind.SUCCEEDED  # and no DevicesLost
        time.sleep(1.0)  # the stopped workers have exited by now
        assert not [e for e in launcher.poll() if isinstance(e, DevicesLost)]
        assert sorted(p.name for p in tmp_path.glob("w*.pid")) == ["w0-1.pid"]
        assert not any(pid_alive(p) for p in singles)
        assert launcher.live_devices() == {0, 1}
    finally:
        launcher.close()


def test_a_new_launcher_reuses_live_workers(tmp_path: Path) -> None:
    first = _launcher(tmp_path)
    first.start()
    pids = {p.name: p.read_text() for p in tmp_path.glob("w*.pid")}
    first.close(detach=True)
    second = _launcher(tmp_path)
    try:
        second.start()
        logs = {p.name: p.read_text()[-2000:] for p in tmp_path.glob("w*.log")}
        assert {p.name: p.read_text() for p in tmp_path.glob("w*.pid")} == pids, logs
        assert second.live_devices() == {0, 1}
    finally:
        second.close()
    assert not any(pid_alive(json.loads(p)["pid"]) for p in pids.values())


def test_a_killed_worker_is_reported_lost_and_replaced(tmp_path: Path) -> None:
    launcher = _launcher(tmp_path)
    try:
        launcher.start()
        killed = _pid(tmp_path / "w1.pid")
        os.kill(killed, signal.SIGKILL)
        lost: list[DevicesLost] = []
        deadline = time.monotonic() + 30
        while not lost and time.monotonic() < deadline:
            lost = [e for e in launcher.poll(0.2) if isinstance(e, DevicesLost)]
        [event] = lost
        assert (event.node, event.gpu_indices) == ("local", (1,))
        assert f"pid {killed}" in event.reason and "SIGKILL" in event.reason
        assert launcher.live_devices() == {0}, "the planner may count only on GPU 0 now"
        assert not (tmp_path / "w1.pid").exists()
        request = LaunchRequest(key("after"), ("python", "-c", "pass"), GpuPlacement("local", (1,)))
        launcher.launch(request)
        assert _until_done(launcher)[-1] is EventKind.SUCCEEDED
        assert _pid(tmp_path / "w1.pid") != killed, "a fresh worker serves GPU 1"
        assert not [e for e in launcher.poll() if isinstance(e, DevicesLost)], "reported once"
    finally:
        launcher.close()


def test_a_worker_that_died_since_the_last_poll_is_reported_before_it_is_replaced(
    tmp_path: Path,
) -> None:
    """A launch that finds its worker dead (not yet reaped by `poll`) still reports it."""
    launcher = _launcher(tmp_path)
    try:
        launcher.start()
        killed = _pid(tmp_path / "w0.pid")
        os.kill(killed, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while _process_state(killed) not in ("Z", ""):
            assert time.monotonic() < deadline, "the worker outlived SIGKILL"
            time.sleep(0.05)
        request = LaunchRequest(key("next"), ("python", "-c", "pass"), GpuPlacement("local", (0,)))
        launcher.launch(request)
        events = launcher.poll()
        lost = [e for e in events if isinstance(e, DevicesLost)]
        assert [(e.node, e.gpu_indices) for e in lost] == [("local", (0,))], events
        assert f"pid {killed}" in lost[0].reason and "SIGKILL" in lost[0].reason
        assert _until_done(launcher)[-1] is EventKind.SUCCEEDED
        assert _pid(tmp_path / "w0.pid") != killed, "a fresh worker serves GPU 0"
    finally:
        launcher.close()


def _process_state(pid: int) -> str:
    """``/proc`` state letter of ``pid`` ("Z": exited, not yet reaped); "" once gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return ""
    return next(line.split()[1] for line in status.splitlines() if line.startswith("State:"))


def test_a_worker_on_its_way_out_is_waited_for_and_replaced(tmp_path: Path) -> None:
    """A worker that closed its socket (replaced after a failure, or idle) but has not
    exited yet is not handed the next task: that task would find no socket."""
    launcher = _launcher(tmp_path)
    try:
        launcher.start()
        leaving = _pid(tmp_path / "w0.pid")
        deadline = time.monotonic() + 60
        while not (tmp_path / "w0.sock").exists():
            assert time.monotonic() < deadline, "the worker never served"
            time.sleep(0.1)
        launcher.poll()  # the launcher sees it serving
        os.kill(leaving, signal.SIGSTOP)  # hold it between closing its socket and exiting
        (tmp_path / "w0.sock").unlink()

        def resume_it() -> None:
            os.kill(leaving, signal.SIGTERM)
            os.kill(leaving, signal.SIGCONT)

        resume = threading.Timer(1.0, resume_it)
        resume.start()
        request = LaunchRequest(key("next"), ("python", "-c", "pass"), GpuPlacement("local", (0,)))
        launcher.launch(request)
        resume.join()
        assert _pid(tmp_path / "w0.pid") != leaving, "a fresh worker serves GPU 0"
        lost = [e for e in launcher.poll() if isinstance(e, DevicesLost)]
        assert [(e.gpu_indices, f"pid {leaving}" in e.reason) for e in lost] == [((0,), True)]
        assert _until_done(launcher)[-1] is EventKind.SUCCEEDED
    finally:
        launcher.close()
