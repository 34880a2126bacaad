"""Task processes on this machine: spawned in their own session, tracked, adopted, stopped.

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
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from airflow_fate.launch.kubernetes.types import TaskKey

STOP_GRACE_S = 10.0
"""How long a process group gets between SIGTERM and SIGKILL."""


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as dead)."""
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


def pid_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


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
        doc = {"pid": popen.pid, "started": start_ticks(popen.pid), "key": _key_doc(key)}
        pid_file.write_text(json.dumps(doc), "utf-8")
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
            try:
                doc = json.loads(pid_file.read_text("utf-8"))
                pid, started = int(doc["pid"]), doc.get("started")
            except (OSError, ValueError, KeyError, TypeError):
                continue
            # the task sets its process title, so the start time identifies it, not argv
            if not pid_alive(pid) or started is None or start_ticks(pid) != started:
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
