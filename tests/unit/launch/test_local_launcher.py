"""`LocalLauncher` with real worker processes and all-MiniLM-L6-v2: runs, faults, adoption.

Every test bounds its waits; fixtures close launchers and check that no worker outlives
them, even when a test fails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_fate.domain.loaders import load_models
from airflow_fate.launch.local import LocalLauncher
from airflow_fate.launch.types import (
    StageEvent,
    StageFailed,
    StageLaunch,
    StageRunning,
    StageSucceeded,
    WorkerRestarted,
)
from airflow_fate.runtime.binding import DeviceBinding
from airflow_fate.runtime.protocol import EmbedTask, ModelSource, StageRequest
from airflow_fate.runtime.registry import resolve_model
from airflow_fate.runtime.synthetic import filler

pytestmark = pytest.mark.slow

LOCAL = Path(__file__).resolve().parents[3] / "examples" / "local"
GIB = 1024**3
WAIT_S = 90.0


def cpu(i: int) -> DeviceBinding:
    return DeviceBinding(
        ids=[f"cpu{i}"], platform="cpu", memory_bytes=GIB, prefix_bytes=GIB // 64, threads=1
    )


@pytest.fixture(scope="module")
def mini() -> ModelSource:
    return resolve_model("all-minilm-l6-v2", load_models(LOCAL / "models.yaml"), LOCAL)


def embed(mini: ModelSource, key: str, device: int = 0, texts: int = 2, **kw: float) -> StageLaunch:
    task = EmbedTask(texts=[filler(f"{key}:{i}", 32) for i in range(texts)])
    return StageLaunch(key, (device,), StageRequest(model=mini, task=task), **kw)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0): look at its state
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def closed_cleanly(launcher: LocalLauncher, devices: list[tuple[int, ...]]) -> None:
    pids = [p for d in devices if (p := launcher.worker_pid(d)) is not None]
    launcher.close()
    deadline = time.monotonic() + 15
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if _alive(p)], "worker processes outlived the launcher"


def collect(
    launcher: LocalLauncher, keys: set[str], timeout_s: float = WAIT_S
) -> tuple[dict[str, StageSucceeded | StageFailed], list[StageEvent]]:
    """Poll until every key has ended (or fail the test after ``timeout_s``)."""
    ended: dict[str, StageSucceeded | StageFailed] = {}
    seen: list[StageEvent] = []
    deadline = time.monotonic() + timeout_s
    while not keys <= ended.keys():
        assert time.monotonic() < deadline, f"timed out waiting for {keys - ended.keys()}"
        for event in launcher.poll(1.0):
            seen.append(event)
            if isinstance(event, StageSucceeded | StageFailed):
                ended[event.key] = event
    return ended, seen


def wait_running(launcher: LocalLauncher, key: str) -> list[StageEvent]:
    deadline = time.monotonic() + WAIT_S
    seen: list[StageEvent] = []
    while time.monotonic() < deadline:
        for event in launcher.poll(1.0):
            seen.append(event)
            if isinstance(event, StageRunning) and event.key == key:
                return seen
    pytest.fail(f"{key} never started")


@pytest.fixture(scope="module")
def shared() -> Iterator[LocalLauncher]:
    launcher = LocalLauncher([cpu(0), cpu(1)], start_timeout_s=120)
    launcher.start()
    yield launcher
    closed_cleanly(launcher, [(0,), (1,)])


def test_stage_runs_for_real_with_events_in_order(shared: LocalLauncher, mini: ModelSource) -> None:
    shared.launch(embed(mini, "a1"))
    shared.launch(embed(mini, "a2"))
    shared.launch(embed(mini, "b1", device=1))
    ended, seen = collect(shared, {"a1", "a2", "b1"})
    for key in ("a1", "a2", "b1"):
        event = ended[key]
        assert isinstance(event, StageSucceeded), event
        assert event.result.embeddings is not None and len(event.result.embeddings[0]) == 384
    assert ended["a2"].at >= ended["a1"].at  # one stage at a time per device, FIFO
    assert isinstance(ended["a2"], StageSucceeded) and ended["a2"].result.model_warm
    order = [e.key for e in seen if isinstance(e, StageRunning)]
    assert order.index("a1") < order.index("a2")


def test_killed_worker_fails_only_its_stage(shared: LocalLauncher, mini: ModelSource) -> None:
    shared.launch(embed(mini, "long", texts=600))
    wait_running(shared, "long")
    shared.launch(embed(mini, "other", device=1))
    pid = shared.worker_pid((0,))
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    ended, seen = collect(shared, {"long", "other"})
    failed = ended["long"]
    assert isinstance(failed, StageFailed) and failed.reason == "worker-died"
    assert "SIGKILL" in failed.message and "long" in failed.message
    assert isinstance(ended["other"], StageSucceeded)
    assert any(isinstance(e, WorkerRestarted) and e.devices == (0,) for e in seen)
    shared.launch(embed(mini, "after-crash"))
    ended, _ = collect(shared, {"after-crash"})
    after = ended["after-crash"]
    assert isinstance(after, StageSucceeded)
    assert not after.result.model_warm  # a fresh worker
    assert shared.worker_pid((0,)) != pid


def test_timeout_fails_the_stage_and_the_device_recovers(
    shared: LocalLauncher, mini: ModelSource
) -> None:
    shared.launch(embed(mini, "slow", texts=600, timeout_s=1.0))
    shared.launch(embed(mini, "next"))
    ended, _ = collect(shared, {"slow", "next"})
    slow = ended["slow"]
    assert isinstance(slow, StageFailed) and slow.reason == "timeout"
    assert "within 1 s" in slow.message
    assert isinstance(ended["next"], StageSucceeded)


def test_cancel_queued_and_running(shared: LocalLauncher, mini: ModelSource) -> None:
    shared.launch(embed(mini, "c-run", device=1, texts=600))
    shared.launch(embed(mini, "c-queued", device=1))
    wait_running(shared, "c-run")
    shared.cancel("c-queued")
    shared.cancel("c-run")
    shared.cancel("never-launched")  # unknown keys are ignored
    shared.launch(embed(mini, "c-after", device=1))
    ended, _ = collect(shared, {"c-run", "c-queued", "c-after"})
    for key in ("c-run", "c-queued"):
        event = ended[key]
        assert isinstance(event, StageFailed) and event.reason == "cancelled"
    assert isinstance(ended["c-after"], StageSucceeded)


def test_missing_model_file_fails_the_stage_not_the_worker(
    shared: LocalLauncher, mini: ModelSource
) -> None:
    gone = mini.model_copy(update={"name": "gone", "directory": "/nonexistent/model"})
    task = EmbedTask(texts=["x"])
    pid = shared.worker_pid((1,))
    shared.launch(StageLaunch("gone", (1,), StageRequest(model=gone, task=task)))
    shared.launch(embed(mini, "fine", device=1))
    ended, _ = collect(shared, {"gone", "fine"})
    gone_event = ended["gone"]
    assert isinstance(gone_event, StageFailed) and gone_event.reason == "model-file"
    assert "/nonexistent/model" in gone_event.message
    assert isinstance(ended["fine"], StageSucceeded)
    assert shared.worker_pid((1,)) == pid


def test_launch_rejects_duplicates_and_unknown_devices(
    shared: LocalLauncher, mini: ModelSource
) -> None:
    with pytest.raises(ValueError, match="unknown devices"):
        shared.launch(embed(mini, "bad-device", device=5))
    shared.launch(embed(mini, "dup"))
    with pytest.raises(ValueError, match="already launched"):
        shared.launch(embed(mini, "dup"))
    collect(shared, {"dup"})


def test_stage_on_devices_the_worker_cannot_see_fails_clearly(
    mini: ModelSource, tmp_path: Path
) -> None:
    gpu = DeviceBinding(
        ids=["GPU-00000000-0000-0000-0000-000000000000"],
        platform="cuda",
        cuda_indices=[0],
        memory_bytes=GIB,
        prefix_bytes=0,
    )
    launcher = LocalLauncher([gpu], run_dir=tmp_path / "run")
    try:
        launcher.launch(embed(mini, "on-gpu"))
        ended, _ = collect(launcher, {"on-gpu"})
        event = ended["on-gpu"]
        assert isinstance(event, StageFailed) and event.reason == "device-mismatch"
        assert "CUDA_VISIBLE_DEVICES=0" in event.message and "torch sees 0" in event.message
    finally:
        closed_cleanly(launcher, [(0,)])


def test_worker_that_cannot_start_marks_its_device_broken(
    mini: ModelSource, tmp_path: Path
) -> None:
    run_dir = tmp_path / ("x" * 110)  # too long for a Unix socket path: bind fails
    launcher = LocalLauncher([cpu(0)], run_dir=run_dir, max_start_failures=2)
    try:
        launcher.launch(embed(mini, "doomed"))
        ended, _ = collect(launcher, {"doomed"})
        event = ended["doomed"]
        assert isinstance(event, StageFailed) and event.reason == "worker-broken"
        assert "failed to start 2 times" in event.message and "w0.log" in event.message
        launcher.launch(embed(mini, "also-doomed"))
        ended, _ = collect(launcher, {"also-doomed"})
        assert isinstance(ended["also-doomed"], StageFailed)
    finally:
        closed_cleanly(launcher, [(0,)])


def test_shard_group_replaces_the_single_device_workers(mini: ModelSource, tmp_path: Path) -> None:
    launcher = LocalLauncher([cpu(0), cpu(1)], run_dir=tmp_path / "run")
    try:
        launcher.launch(embed(mini, "single"))
        collect(launcher, {"single"})
        single_pid = launcher.worker_pid((0,))
        group = StageLaunch("group", (0, 1), embed(mini, "group").request)
        launcher.launch(group)
        ended, _ = collect(launcher, {"group"})
        assert isinstance(ended["group"], StageSucceeded), ended["group"]
        assert launcher.worker_pid((0,)) is None  # retired: one worker per device at a time
        assert single_pid is not None and not _alive(single_pid)
        assert launcher.worker_pid((0, 1)) is not None
    finally:
        closed_cleanly(launcher, [(0,), (1,), (0, 1)])


def test_restarted_launcher_adopts_a_running_stage(mini: ModelSource, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first = LocalLauncher([cpu(0)], run_dir=run_dir, linger_s=60)
    second: LocalLauncher | None = None
    try:
        first.launch(embed(mini, "adopt-me", texts=200))
        wait_running(first, "adopt-me")
        pid = first.worker_pid((0,))
        first.close(detach=True)  # the scheduler "restarts"; the worker keeps computing
        assert pid is not None and _alive(pid)
        second = LocalLauncher([cpu(0)], run_dir=run_dir)
        assert second.adopt(["adopt-me", "unknown"]) == ["adopt-me"]
        ended, _ = collect(second, {"adopt-me"})
        event = ended["adopt-me"]
        assert isinstance(event, StageSucceeded), event
        assert event.result.embeddings is not None and len(event.result.embeddings) == 200
        assert second.worker_pid((0,)) == pid
        second.launch(embed(mini, "after-adopt"))  # the adopted worker serves new stages
        ended, _ = collect(second, {"after-adopt"})
        assert isinstance(ended["after-adopt"], StageSucceeded)
    finally:
        first.close()
        if second is not None:
            closed_cleanly(second, [(0,)])


def test_importing_the_launcher_does_not_import_torch() -> None:
    code = (
        "import sys, airflow_fate.launch.local, airflow_fate.engine.live, airflow_fate.cli;"
        "sys.exit('torch' in sys.modules or 'transformers' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], timeout=60, check=False)
    assert done.returncode == 0
