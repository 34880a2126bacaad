"""Processes on this machine: liveness, stopping, device workers, and task processes.

The one place both local backends (`launch.local` for the live engine, `launch.local_tasks`
for the executor) start a device worker (`spawn_worker`) and ask whether a pid runs
(`pid_alive`), so the two agree on what a dead process is.

Each Airflow task runs as ``python -m airflow.sdk.execution_time.execute_workload`` in a
new session (its own process group), so stopping it stops the task runner it forks, and
so it can outlive a scheduler that stops: a pid file per task (``<dir>/<name>.pid``,
holding the pid and the task key) lets the next scheduler adopt it. Stopping is always
SIGTERM to the group, a bounded wait, then SIGKILL.

A process's exit code is *not* the task's outcome (the Task SDK reports that to the API
server and may exit 0 after the task failed); callers read the outcome from the database.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import airflow_fate
from airflow_fate.launch.types import TaskKey
from airflow_fate.runtime.binding import WorkerConfig, worker_env

STOP_GRACE_S = 10.0
"""How long a process group gets between SIGTERM and SIGKILL."""


WORKER_MODULE = "airflow_fate.runtime.worker"


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs.

    A zombie counts as dead: a worker or task that exited but was not reaped yet (our
    own child whose `Popen` was dropped, say) holds no device and serves no socket.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), to tell it from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def write_pid_file(path: Path, pid: int, **extra: object) -> None:
    """Record ``pid`` and its start time in ``path`` (JSON), so a later launcher adopts it."""
    path.write_text(json.dumps({"pid": pid, "started": start_ticks(pid), **extra}), "utf-8")


def read_pid_file(path: Path) -> tuple[int, int | None] | None:
    """``(pid, start ticks)`` from ``path``; None if unreadable.

    A bare number (the older worker pid file) reads as a pid with no start time.
    """
    try:
        doc = json.loads(path.read_text("utf-8"))
        if isinstance(doc, int):
            return doc, None
        started = doc.get("started")
        return int(doc["pid"]), None if started is None else int(started)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def same_process(pid: int, started: int | None) -> bool:
    """Whether the process recorded as (``pid``, ``started``) still runs.

    The start time tells it from a later process given the same pid; it comes from
    ``/proc/<pid>/stat``, which is always readable, unlike the argv in ``cmdline`` (a
    task sets its process title, and reading another process's memory can fail).
    """
    return started is not None and pid_alive(pid) and start_ticks(pid) == started


def pid_cmdline(pid: int) -> str:
    """``pid``'s argv joined by spaces (``""`` when it is gone or unreadable)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def spawn_worker(
    config: WorkerConfig, base_env: Mapping[str, str], log_path: Path, *, new_session: bool
) -> subprocess.Popen[bytes]:
    """Start a device worker (``python -m airflow_fate.runtime.worker``) for ``config``.

    Its environment is ``base_env`` pinned to the binding's devices (`worker_env`), with
    this package's root first on ``PYTHONPATH`` so the worker runs the same code as its
    launcher even from a checkout. Output is appended to ``log_path``. ``new_session``
    puts it in a process group of its own, so it outlives a scheduler that detaches.
    """
    env = worker_env(config.binding, base_env)
    root = str(Path(airflow_fate.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    argv = [sys.executable, "-m", WORKER_MODULE, "--config", config.model_dump_json()]
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )


def stop_group(
    pid: int, grace_s: float = STOP_GRACE_S, popen: subprocess.Popen[bytes] | None = None
) -> None:
    """SIGTERM ``pid``'s process group, wait up to ``grace_s``, then SIGKILL it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + (grace_s if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline:
            if popen is not None:
                if popen.poll() is not None:
                    return
            elif not pid_alive(pid):
                return
            time.sleep(0.05)


def key_name(key: TaskKey) -> str:
    """A short file-name-safe name for a task key."""
    digest = hashlib.sha1(
        json.dumps(_key_doc(key), sort_keys=True).encode("utf-8"), usedforsecurity=False
    ).hexdigest()[:16]
    return f"{key.task_id[:40]}-{digest}".replace("/", "_")


def _key_doc(key: TaskKey) -> dict[str, object]:
    return {
        "dag_id": key.dag_id,
        "task_id": key.task_id,
        "run_id": key.run_id,
        "try_number": key.try_number,
        "map_index": key.map_index,
    }


@dataclass
class _Tracked:
    key: TaskKey
    pid: int
    popen: subprocess.Popen[bytes] | None
    started: float
    pid_file: Path


@dataclass(frozen=True, slots=True)
class Exited:
    """A tracked process ended; ``code`` is None for an adopted one (not our child)."""

    key: TaskKey
    pid: int
    code: int | None
    seconds: float


@dataclass
class TaskProcesses:
    """Spawns and tracks task processes; pid files in ``directory`` allow adoption."""

    directory: Path
    grace_s: float = STOP_GRACE_S
    clock: Callable[[], float] = time.monotonic
    _tracked: dict[TaskKey, _Tracked] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def _now(self) -> float:
        return self.clock()

    def __contains__(self, key: TaskKey) -> bool:
        return key in self._tracked

    def __len__(self) -> int:
        return len(self._tracked)

    def pid_of(self, key: TaskKey) -> int | None:
        t = self._tracked.get(key)
        return None if t is None else t.pid

    def running(self) -> list[tuple[TaskKey, int, float]]:
        """``(key, pid, seconds since it started)`` of every tracked process."""
        now = self._now()
        return [(t.key, t.pid, round(now - t.started, 3)) for t in self._tracked.values()]

    def spawn(self, key: TaskKey, argv: Sequence[str], env: Mapping[str, str]) -> int:
        """Start ``argv`` in a new session with output in ``<dir>/<name>.log``; its pid."""
        if key in self._tracked:
            raise ValueError(f"task {key} is already running here")
        name = key_name(key)
        with open(self.directory / f"{name}.log", "ab") as log:
            popen = subprocess.Popen(
                list(argv),
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        pid_file = self.directory / f"{name}.pid"
        write_pid_file(pid_file, popen.pid, key=_key_doc(key))
        self._tracked[key] = _Tracked(key, popen.pid, popen, self._now(), pid_file)
        return popen.pid

    def poll(self) -> list[Exited]:
        """Processes that ended since the last call (their pid files are removed)."""
        out: list[Exited] = []
        for key, t in list(self._tracked.items()):
            if t.popen is not None:
                code = t.popen.poll()
                if code is None:
                    continue
            elif pid_alive(t.pid):
                continue
            else:
                code = None
            del self._tracked[key]
            t.pid_file.unlink(missing_ok=True)
            out.append(Exited(key, t.pid, code, self._now() - t.started))
        return out

    def stop(self, key: TaskKey) -> bool:
        """Stop a tracked process group (SIGTERM, then SIGKILL); whether it was tracked."""
        t = self._tracked.get(key)
        if t is None:
            return False
        stop_group(t.pid, self.grace_s, t.popen)
        return True

    def adopt(self, keys: Sequence[TaskKey]) -> list[TaskKey]:
        """Track processes an earlier scheduler left running for these keys."""
        wanted = {key_name(k): k for k in keys}
        adopted: list[TaskKey] = []
        for pid_file in sorted(self.directory.glob("*.pid")):
            key = wanted.get(pid_file.stem)
            if key is None or key in self._tracked:
                continue
            recorded = read_pid_file(pid_file)
            if recorded is None:
                continue
            pid, started = recorded
            if not same_process(pid, started):
                pid_file.unlink(missing_ok=True)
                continue
            self._tracked[key] = _Tracked(key, pid, None, self._now(), pid_file)
            adopted.append(key)
        return adopted

    def stop_all(self) -> None:
        """Stop every tracked process group, all at once (their grace periods overlap)."""
        tracked = list(self._tracked.values())
        for t in tracked:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(t.pid, signal.SIGTERM)
        for t in tracked:
            stop_group(t.pid, self.grace_s, t.popen)
            t.pid_file.unlink(missing_ok=True)
        self._tracked.clear()

    def detach_all(self) -> None:
        """Forget every process and leave it running (a later scheduler adopts it)."""
        self._tracked.clear()
