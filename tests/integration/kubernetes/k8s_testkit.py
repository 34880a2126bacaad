"""Helpers shared by the Kubernetes integration tests (imported by conftest and tests)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from airflow_fate.launch.kubernetes.settings import (
    GpuMode,
    LauncherSettings,
    PodSettings,
    RetrySettings,
)
from airflow_fate.launch.types import (
    EventKind,
    GpuPlacement,
    LaunchEvent,
    LaunchRequest,
    TaskKey,
    airflow_task_command,
)

if TYPE_CHECKING:
    from airflow_fate.launch.kubernetes.launcher import KubernetesLauncher

NAMESPACE = "fate-test"
LauncherFactory = Callable[..., "KubernetesLauncher"]


@dataclass
class FakeClock:
    """Monotonic time the test moves by hand (for deferred launch retries)."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class SleepRecorder:
    """Stands in for ``time.sleep``: records delays, never sleeps."""

    delays: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def settings_for(
    mode: GpuMode = GpuMode.DRA, executor_id: str = "scheduler-1", **overrides: Any
) -> LauncherSettings:
    """Launcher settings with short timeouts suited to tests."""
    pod = PodSettings(namespace=NAMESPACE, gpu_mode=mode, image="registry.test/stage:1")
    base: dict[str, Any] = {
        "executor_id": executor_id,
        "watch_timeout_s": 2,
        "request_timeout_s": 5.0,
        "retry": RetrySettings(base_delay_s=0.01, max_delay_s=0.05, max_retry_after_s=30),
        "pod": pod,
    }
    base.update(overrides)
    return LauncherSettings(**base)


def task_key(task: str = "summarise", try_number: int = 1, map_index: int = -1) -> TaskKey:
    return TaskKey(
        dag_id="rag_pipeline",
        task_id=task,
        run_id="manual__2026-01-01T00:00:00+00:00",
        try_number=try_number,
        map_index=map_index,
    )


def launch_request(
    key: TaskKey | None = None,
    node: str = "gpu-node-a",
    indices: tuple[int, ...] = (0,),
) -> LaunchRequest:
    uuids = tuple(f"GPU-{node}-{i:04d}" for i in indices)
    return LaunchRequest(
        key=key or task_key(),
        command=airflow_task_command('{"token": "t", "ti": {}}'),
        placement=GpuPlacement(node=node, gpu_indices=indices, gpu_uuids=uuids),
    )


def kinds(events: list[LaunchEvent], key: TaskKey | None = None) -> list[EventKind]:
    return [e.kind for e in events if key is None or e.key == key]


def has(kind: EventKind, key: TaskKey | None = None) -> Callable[[list[LaunchEvent]], bool]:
    return lambda events: kind in kinds(events, key)


def poll_until(
    launcher: Any,
    done: Callable[[list[LaunchEvent]], bool],
    timeout_s: float = 5.0,
) -> list[LaunchEvent]:
    """Poll until ``done(all events so far)``; fail the test on timeout."""
    events: list[LaunchEvent] = []
    deadline = time.monotonic() + timeout_s
    while True:
        events.extend(launcher.poll())
        if done(events):
            return events
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s; events so far: {events}")
        time.sleep(0.01)


def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout_s}s")
        time.sleep(0.01)


def write_kubeconfig(path: Path, server: str) -> Path:
    """A kubeconfig for ``server`` (the fake API server), as a cluster admin would write it."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": server}}],
        "users": [{"name": "tester", "user": {"token": "not-checked"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tester"}}],
        "current-context": "fake",
    }
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path
