"""`LocalTaskLauncher`: Airflow stage tasks as local processes next to device workers.

The executor's local backend (`launch.backends`). Each planned stage's Airflow task process
(``execute_workload``) starts with the placement in its environment
(`operators.placement`): node, GPU indices, the device ids and the Unix socket of the
device worker serving those GPUs, and ``CUDA_VISIBLE_DEVICES``. The operator sends its
stage to that worker (`runtime.worker`, protocol of ADR 0002), which keeps models and
prefix KV warm across tasks, so residency and prefix reuse persist as the planner
assumed.

Workers are long-lived and serve one task connection after another (``linger_s`` is
their idle timeout). One worker per device set: a shard group gets its own worker after
the single-device workers of its GPUs are retired, so a device is never driven twice.
Workers and task processes run in sessions of their own and record pid files in
``run_dir``: after a scheduler restart a new launcher reuses live workers and adopts
live tasks. `close` stops them all, or with ``detach`` leaves them for the next one.

It is a `TaskLauncher` (`LaunchRequest` in, `LaunchEvent` out), as the Kubernetes
backend is, so the executor takes either without knowing which.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from airflow_fate.domain.cluster import Cluster
from airflow_fate.launch.devices import merge
from airflow_fate.launch.processes import (
    WORKER_MODULE,
    TaskProcesses,
    pid_alive,
    pid_cmdline,
    read_pid_file,
    same_process,
    spawn_worker,
    stop_group,
    write_pid_file,
)
from airflow_fate.launch.types import (
    DevicesLost,
    EventKind,
    LaunchEvent,
    LaunchRequest,
    TaskEvent,
    TaskKey,
)
from airflow_fate.operators.placement import DevicePlacement
from airflow_fate.runtime.binding import DeviceBinding, WorkerConfig
from airflow_fate.runtime.owner_only import private_directory
from airflow_fate.runtime.worker import EXIT_REPLACED

NAMESPACE = "local"
_MAX_SOCKET_PATH = 100


@dataclass
class _Worker:
    devices: tuple[int, ...]
    binding: DeviceBinding
    pid: int
    popen: subprocess.Popen[bytes] | None
    serving: bool = False
    """Its socket was seen: it started serving (a starting worker has none yet)."""

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return pid_alive(self.pid)

    def exit_text(self) -> str:
        """How the (ended) worker process ended, in words."""
        code = self.popen.returncode if self.popen is not None else None
        if code is None:
            return "is gone (adopted from an earlier scheduler; exit status unknown)"
        if code < 0:
            return f"was killed by {signal.Signals(-code).name}"
        if code == 0:
            return "exited (idle for its whole linger time, or told to stop)"
        if code == EXIT_REPLACED:
            return "exited to be replaced: a stage failure left its state suspect (see its log)"
        return f"exited with code {code}"


class LocalTaskLauncher:
    """Runs stage tasks on this machine's devices (see the module docstring).

    ``keeps_tasks_on_close`` is False: `close` stops the task processes it tracks
    (unless it detaches), so a caller need not cancel them one by one.

    Args:
        cluster: the planner's cluster (node names, GPU counts).
        bindings: one device binding per cluster GPU, by global index.
        run_dir: worker sockets, pid files and logs; persistent, so a restarted
            scheduler finds the workers and tasks it left.
        models_path: the model catalog the stage operators resolve models with.
        stage_timeout_s: how long a stage may run on its device.
        worker_idle_s: a worker with no task for this long exits by itself.
        base_env: environment of task processes (the scheduler's, normally).
    """

    keeps_tasks_on_close = False

    def __init__(
        self,
        cluster: Cluster,
        bindings: Sequence[DeviceBinding],
        run_dir: Path,
        *,
        models_path: str | None = None,
        stage_timeout_s: float = 600.0,
        worker_idle_s: float = 3600.0,
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        if len(bindings) < len(cluster.gpus):
            raise ValueError(f"{len(cluster.gpus)} GPUs but {len(bindings)} device bindings")
        self.cluster = cluster
        self.bindings = list(bindings)
        self.run_dir = run_dir
        self.models_path = models_path
        self.stage_timeout_s = stage_timeout_s
        self.worker_idle_s = worker_idle_s
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.tasks = TaskProcesses(run_dir / "tasks")
        self._workers: dict[tuple[int, ...], _Worker] = {}
        self._devices: dict[TaskKey, tuple[int, ...]] = {}
        self._events: list[TaskEvent] = []
        self._node_index = {n.name: i for i, n in enumerate(cluster.nodes)}
        sock = self._socket((*range(len(cluster.gpus)),))
        if len(str(sock)) > _MAX_SOCKET_PATH:
            raise ValueError(f"run_dir {run_dir} is too long for Unix socket paths ({sock})")

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Reattach to live workers of an earlier scheduler, start the missing ones."""
        private_directory(self.run_dir)  # the workers' sockets: owner-only
        for pid_file in sorted(self.run_dir.glob("w*.pid")):
            devices = _devices_of(pid_file.stem)
            if devices is None or any(d >= len(self.bindings) for d in devices):
                continue
            recorded = read_pid_file(pid_file)
            if recorded is not None and _is_our_worker(*recorded):
                pid = recorded[0]
                self._workers[devices] = _Worker(devices, self._binding(devices), pid, None)
            else:
                pid_file.unlink(missing_ok=True)
        for g in range(len(self.cluster.gpus)):
            if not any(g in d for d in self._workers):
                self._spawn_worker((g,))

    def close(self, *, detach: bool = False) -> None:
        """Stop every task and worker, or (``detach``) leave them for a later scheduler."""
        if detach:
            self.tasks.detach_all()
            self._workers.clear()
            return
        self.tasks.stop_all()
        for worker in self._workers.values():
            stop_group(worker.pid, 5.0, worker.popen)
            (self.run_dir / f"{_name(worker.devices)}.pid").unlink(missing_ok=True)
        self._workers.clear()

    def live_devices(self) -> set[int]:
        """GPUs whose worker kept running (so what it held is still resident)."""
        return {g for d, w in self._workers.items() if w.alive() for g in d}

    def held_models(self) -> None:
        """Not asked: the store's residency rows stand for the live workers."""
        return None

    def pid_of(self, key: TaskKey) -> int | None:
        return self.tasks.pid_of(key)

    # -- the launcher interface ------------------------------------------------------

    def launch(self, request: LaunchRequest) -> None:
        devices = self._global(request)
        worker = self._worker_for(devices)
        placement = DevicePlacement(
            node=request.placement.node,
            gpu_indices=request.placement.gpu_indices,
            device_ids=tuple(worker.binding.ids),
            worker_socket=str(self._socket(devices)),
            models_path=self.models_path,
            timeout_s=self.stage_timeout_s,
        )
        env = dict(self.base_env)
        env.update(request.env)
        env.update(placement.to_env())
        if worker.binding.platform == "cuda":
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, worker.binding.cuda_indices))
            env["FATE_GPU_UUIDS"] = ",".join(worker.binding.ids)
        else:
            env["CUDA_VISIBLE_DEVICES"] = ""
        argv = [sys.executable if a == "python" else a for a in request.command[:1]]
        argv += list(request.command[1:])
        pid = self.tasks.spawn(request.key, argv, env)
        self._devices[request.key] = devices
        self._events.append(
            LaunchEvent(
                EventKind.RUNNING,
                request.key,
                f"pid-{pid}",
                NAMESPACE,
                node=request.placement.node,
                gpu_uuids=tuple(worker.binding.ids),
            )
        )

    def poll(self, timeout_s: float = 0.0) -> list[TaskEvent]:
        deadline = time.monotonic() + max(timeout_s, 0.0)
        while True:
            self._reap_workers()
            for ended in self.tasks.poll():
                self._devices.pop(ended.key, None)
                if ended.code in (0, None):
                    kind, reason = EventKind.SUCCEEDED, ""
                else:
                    kind, reason = EventKind.FAILED, f"task process exited with code {ended.code}"
                self._events.append(
                    LaunchEvent(kind, ended.key, f"pid-{ended.pid}", NAMESPACE, reason=reason)
                )
            if self._events or time.monotonic() >= deadline:
                events, self._events = self._events, []
                return events
            time.sleep(0.05)

    def cancel(self, key: TaskKey) -> None:
        self.tasks.stop(key)

    def adopt(self, keys: Sequence[TaskKey]) -> list[TaskKey]:
        """Track task processes an earlier scheduler started for these keys."""
        adopted = self.tasks.adopt(list(keys))
        for key in adopted:
            pid = self.tasks.pid_of(key)
            self._events.append(LaunchEvent(EventKind.ADOPTED, key, f"pid-{pid}", NAMESPACE))
        return adopted

    # -- workers ---------------------------------------------------------------------

    def _global(self, request: LaunchRequest) -> tuple[int, ...]:
        node = self._node_index.get(request.placement.node)
        if node is None:
            raise ValueError(f"unknown node {request.placement.node!r} for {request.key}")
        gpus = self.cluster.node_gpus[node]
        bad = [i for i in request.placement.gpu_indices if not 0 <= i < len(gpus)]
        if bad:
            raise ValueError(f"node {request.placement.node!r} has no GPU {bad} ({request.key})")
        return tuple(gpus[i] for i in request.placement.gpu_indices)

    def _binding(self, devices: tuple[int, ...]) -> DeviceBinding:
        return merge([self.bindings[d] for d in devices])

    def _worker_for(self, devices: tuple[int, ...]) -> _Worker:
        """The live worker for exactly ``devices``; retires overlapping ones first.

        Workers that ended since the last `poll` are reported first: one that died just
        before this launch would otherwise be replaced without the planner hearing that
        what it held is gone.
        """
        self._reap_workers()
        worker = self._workers.get(devices)
        if worker is not None and worker.alive():
            if self._socket(devices).exists():
                worker.serving = True
                return worker
            if not worker.serving:
                return worker  # still starting: the task waits for its socket
            self._await_exit(worker)  # it stopped serving (replaced, idle) and is exiting
            self._reap_workers()
        for other in [w for d, w in self._workers.items() if set(d) & set(devices)]:
            stop_group(other.pid, 5.0, other.popen)
            (self.run_dir / f"{_name(other.devices)}.pid").unlink(missing_ok=True)
            del self._workers[other.devices]
        return self._spawn_worker(devices)

    def _await_exit(self, worker: _Worker, grace_s: float = 10.0) -> None:
        """Let a worker that closed its socket finish exiting (so its exit status says
        why), stopping it after ``grace_s``; a task sent to it would find no socket."""
        if worker.popen is not None:
            try:
                worker.popen.wait(timeout=grace_s)
                return
            except subprocess.TimeoutExpired:
                pass
        stop_group(worker.pid, 5.0, worker.popen)

    def _reap_workers(self) -> None:
        """Report workers whose process ended: what they held is gone (`DevicesLost`).

        Killed, out of memory, or idle past ``worker_idle_s``: either way the planner must
        stop counting on their models and prefix KV. The task that was talking to one
        fails on its own (its device client sees the connection close) and is reported
        by its process's exit; the next stage on those GPUs gets a fresh worker.
        """
        for devices, worker in list(self._workers.items()):
            if worker.alive():
                worker.serving = worker.serving or self._socket(devices).exists()
                continue
            del self._workers[devices]
            (self.run_dir / f"{_name(devices)}.pid").unlink(missing_ok=True)
            node, local = self._local(devices)
            log = self.run_dir / f"{_name(devices)}.log"
            reason = f"device worker {_name(devices)} (pid {worker.pid}) {worker.exit_text()}"
            self._events.append(DevicesLost(node, local, f"{reason}; log: {log}"))

    def _local(self, devices: tuple[int, ...]) -> tuple[str, tuple[int, ...]]:
        """Node name and node-local GPU indices of global GPU indices."""
        gpus = [self.cluster.gpus[d] for d in devices]
        return self.cluster.nodes[gpus[0].node].name, tuple(g.local for g in gpus)

    def _spawn_worker(self, devices: tuple[int, ...]) -> _Worker:
        binding = self._binding(devices)
        name = _name(devices)
        config = WorkerConfig(
            binding=binding,
            socket_path=str(self._socket(devices)),
            linger_s=self.worker_idle_s,
            accept_timeout_s=self.worker_idle_s,
        )
        popen = spawn_worker(config, self.base_env, self.run_dir / f"{name}.log", new_session=True)
        write_pid_file(self.run_dir / f"{name}.pid", popen.pid)
        worker = _Worker(devices, binding, popen.pid, popen)
        self._workers[devices] = worker
        return worker

    def _socket(self, devices: tuple[int, ...]) -> Path:
        return self.run_dir / f"{_name(devices)}.sock"


def _name(devices: tuple[int, ...]) -> str:
    return "w" + "-".join(str(d) for d in devices)


def _devices_of(name: str) -> tuple[int, ...] | None:
    try:
        return tuple(int(x) for x in name.removeprefix("w").split("-"))
    except ValueError:
        return None


def _is_our_worker(pid: int, started: int | None) -> bool:
    """Whether the recorded worker still runs (a pid file without a start time, from an
    older scheduler, is checked by its command line instead)."""
    if started is not None:
        return same_process(pid, started)
    return pid_alive(pid) and WORKER_MODULE in pid_cmdline(pid)
