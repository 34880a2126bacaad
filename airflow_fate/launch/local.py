"""`LocalLauncher`: stages run in device workers on this machine, one per (virtual) GPU.

Each cluster GPU is bound to a device of this machine (`airflow_fate.launch.devices`)
and served by a worker process pinned to it, so models and prefix KV stay warm between
stages placed there. A stage given a shard group of k GPUs runs in a worker bound to all
k; the single-GPU workers of those devices are retired first (and respawned when needed
again), so a device is never driven by two workers at once.

Faults never hang the caller: a worker that dies, runs out of memory or overruns a
stage's timeout fails that stage only, and is replaced by a fresh worker that serves the
device's next stage; a worker that cannot even start ``max_start_failures`` times in a
row marks its devices broken and fails their stages with its log's path. Every wait
(start, stage, stop) has a timeout.

Adoption: with a persistent ``run_dir`` and ``linger_s`` > 0, workers outlive a launcher
that detaches or dies; a new launcher on the same ``run_dir`` reconnects to them and
`adopt` takes over the stages they were running, whose outcomes arrive via `poll`.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, Queue
from types import TracebackType

from airflow_fate.launch.devices import merge
from airflow_fate.launch.types import (
    StageEvent,
    StageFailed,
    StageLaunch,
    StageRunning,
    StageSucceeded,
    WorkerRestarted,
)
from airflow_fate.launch.worker_process import Inbound, WorkerProcess
from airflow_fate.runtime.binding import DeviceBinding, WorkerConfig
from airflow_fate.runtime.owner_only import private_directory
from airflow_fate.runtime.protocol import (
    FailureReason,
    Hello,
    RunStage,
    StageFailure,
    StageResult,
    StageStarted,
)


@dataclass
class _Slot:
    """A worker serving one device set, and the stages queued for it."""

    devices: tuple[int, ...]
    binding: DeviceBinding
    worker: WorkerProcess | None = None
    generation: int = 0
    ready: bool = False
    spawned_at: float = 0.0
    queue: deque[StageLaunch] = field(default_factory=deque)
    running: StageLaunch | None = None
    deadline: float = float("inf")
    adopted: set[str] = field(default_factory=set)
    start_failures: int = 0
    broken: str | None = None

    @property
    def name(self) -> str:
        return _slot_name(self.devices)

    @property
    def busy(self) -> bool:
        return self.running is not None or bool(self.queue) or bool(self.adopted)


class LocalLauncher:
    """Runs stages in local device workers (see the module docstring).

    Args:
        bindings: one binding per cluster GPU, by global index (`inventory.bind`).
        run_dir: where sockets, logs and the running-stage journal live; a temporary
            directory (removed on close) when None.
        linger_s: how long workers wait for a new launcher after this one goes away
            (0: they exit at once, so a crashed launcher leaves no processes).
        start_timeout_s: how long a worker may take to start and say hello.
        stop_timeout_s: how long `close` waits for a worker before killing it.
        max_start_failures: consecutive failed starts before a device is marked broken.
        clock: monotonic seconds (injectable for tests).
    """

    keeps_tasks_on_close = False
    """`close` stops the workers, and the stages with them (unless it detaches)."""

    def __init__(
        self,
        bindings: Sequence[DeviceBinding],
        *,
        run_dir: Path | None = None,
        linger_s: float = 0.0,
        start_timeout_s: float = 180.0,
        stop_timeout_s: float = 10.0,
        max_start_failures: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._bindings = list(bindings)
        self._own_dir = run_dir is None
        self.run_dir = Path(tempfile.mkdtemp(prefix="fate-")) if run_dir is None else run_dir
        private_directory(self.run_dir)  # the workers' sockets: owner-only
        self._linger_s = linger_s
        self._start_timeout_s = start_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._max_start_failures = max_start_failures
        self._clock = clock
        self._inbox: Queue[Inbound] = Queue()
        self._slots: dict[tuple[int, ...], _Slot] = {}
        self._held: deque[StageLaunch] = deque()
        self._keys: set[str] = set()
        self._events: list[StageEvent] = []
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Start a worker for every device now, so their imports overlap with planning."""
        for g in range(len(self._bindings)):
            self._slot_for((g,))

    def close(self, *, detach: bool = False) -> None:
        """Stop every worker (or, with ``detach``, leave them running for adoption)."""
        if self._closed:
            return
        self._closed = True
        workers = [s.worker for s in self._slots.values() if s.worker is not None]
        if detach:
            for worker in workers:
                worker.detach()
        else:  # all at once: their exits overlap
            for worker in workers:
                worker.request_stop()
            deadline = time.monotonic() + self._stop_timeout_s
            for worker in workers:
                worker.wait_exit(max(deadline - time.monotonic(), 0.0))
                worker.kill()
        if self._own_dir and not detach:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self) -> LocalLauncher:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def held_models(self) -> None:
        """Not asked: what an attached worker holds arrives in its `Hello`."""
        return None

    def live_devices(self) -> set[int]:
        """GPUs served by a worker an earlier launcher left (attached by `adopt`)."""
        return {
            g
            for s in self._slots.values()
            if s.generation == 0 and s.worker is not None and not s.worker.exited()
            for g in s.devices
        }

    def worker_pid(self, devices: tuple[int, ...]) -> int | None:
        """The pid of the worker serving ``devices`` (for operators and fault tests)."""
        slot = self._slots.get(devices)
        return None if slot is None or slot.worker is None else slot.worker.pid

    def log_path(self, devices: tuple[int, ...]) -> Path:
        return self.run_dir / f"{_slot_name(devices)}.log"

    # -- the Launcher protocol -------------------------------------------------------

    def launch(self, launch: StageLaunch) -> None:
        if self._closed:
            raise RuntimeError("launcher is closed")
        if launch.key in self._keys:
            raise ValueError(f"stage {launch.key!r} was already launched")
        bad = [d for d in launch.devices if not 0 <= d < len(self._bindings)]
        if bad or not launch.devices:
            raise ValueError(f"stage {launch.key!r}: unknown devices {launch.devices}")
        self._keys.add(launch.key)
        self._held.append(launch)
        self._place_held()

    def poll(self, timeout_s: float = 0.0) -> list[StageEvent]:
        end = self._clock() + max(timeout_s, 0.0)
        while True:
            self._check_deadlines()
            self._place_held()
            while True:
                try:
                    item = self._inbox.get_nowait()
                except Empty:
                    break
                self._handle(item)
            now = self._clock()
            if self._events or now >= end:
                events, self._events = self._events, []
                return events
            wait = min(end, self._next_deadline()) - now
            try:
                item = self._inbox.get(timeout=max(wait, 0.001))
            except Empty:
                continue
            self._handle(item)

    def cancel(self, key: str) -> None:
        for launch in list(self._held):
            if launch.key == key:
                self._held.remove(launch)
                self._fail(launch.key, "cancelled", "cancelled before it started")
                return
        for slot in self._slots.values():
            for launch in list(slot.queue):
                if launch.key == key:
                    slot.queue.remove(launch)
                    self._fail(key, "cancelled", "cancelled before it started")
                    return
            if slot.running is not None and slot.running.key == key:
                self._fail(key, "cancelled", "cancelled while running; worker replaced")
                slot.running = None
                self._restart(slot, f"stage {key} cancelled")
                return

    def adopt(self, keys: Sequence[str]) -> list[str]:
        """Take over stages a previous launcher on this ``run_dir`` left running.

        A stage is adoptable when the journal names it as running on a worker whose socket
        still answers; its outcome then arrives through `poll` (from the worker's Hello).
        Call it before `start` or any `launch` on those devices: a fresh worker for the
        same devices takes over their socket path.
        """
        wanted = set(keys)
        adopted: list[str] = []
        for journal in sorted(self.run_dir.glob("w*.running")):
            key = journal.read_text(encoding="utf-8")
            devices = _slot_devices(journal.stem)
            sock = self.run_dir / f"{journal.stem}.sock"
            if key not in wanted or devices is None or key in self._keys or not sock.exists():
                continue
            if devices in self._slots:
                continue  # this launcher already runs its own worker there
            slot = self._new_slot(devices)
            slot.worker = WorkerProcess(
                devices, slot.generation, sock, self.log_path(devices), self._inbox
            )
            slot.spawned_at = self._clock()
            slot.worker.attach(self._start_timeout_s)
            slot.adopted.add(key)
            self._keys.add(key)
            adopted.append(key)
        return adopted

    # -- slots -----------------------------------------------------------------------

    def _new_slot(self, devices: tuple[int, ...]) -> _Slot:
        binding = merge([self._bindings[d] for d in devices])
        slot = _Slot(devices=devices, binding=binding)
        self._slots[devices] = slot
        return slot

    def _slot_for(self, devices: tuple[int, ...]) -> _Slot | None:
        """The slot serving exactly ``devices``, switching layouts if needed and possible.

        None while an overlapping slot (another layout of these devices) is still busy.
        """
        slot = self._slots.get(devices)
        if slot is not None:
            return slot
        overlap = [s for s in self._slots.values() if set(s.devices) & set(devices)]
        if any(s.busy for s in overlap):
            return None
        for other in overlap:
            if other.worker is not None:
                other.worker.stop(self._stop_timeout_s)
            del self._slots[other.devices]
        slot = self._new_slot(devices)
        self._spawn(slot)
        return slot

    def _place_held(self) -> None:
        for launch in list(self._held):
            slot = self._slot_for(launch.devices)
            if slot is None:
                continue
            self._held.remove(launch)
            if slot.broken is not None:
                self._fail(launch.key, "worker-broken", slot.broken)
                continue
            slot.queue.append(launch)
            self._dispatch(slot)

    def _spawn(self, slot: _Slot) -> None:
        slot.generation += 1
        slot.ready = False
        slot.spawned_at = self._clock()
        sock = self.run_dir / f"{slot.name}.sock"
        config = WorkerConfig(
            binding=slot.binding,
            socket_path=str(sock),
            linger_s=self._linger_s,
            accept_timeout_s=self._start_timeout_s,
        )
        slot.worker = WorkerProcess(
            slot.devices, slot.generation, sock, self.log_path(slot.devices), self._inbox
        )
        slot.worker.spawn(config, self._start_timeout_s)

    def _restart(self, slot: _Slot, cause: str) -> None:
        if slot.worker is not None:
            slot.worker.kill()
        self._journal(slot, None)
        self._events.append(WorkerRestarted(slot.devices, self._clock(), cause))
        self._spawn(slot)

    def _dispatch(self, slot: _Slot) -> None:
        if not slot.ready or slot.running is not None or slot.adopted or not slot.queue:
            return
        assert slot.worker is not None
        launch = slot.queue.popleft()
        slot.running = launch
        slot.deadline = self._clock() + launch.timeout_s
        self._journal(slot, launch.key)
        msg = RunStage(key=launch.key, devices=slot.binding.ids, request=launch.request)
        slot.worker.send(msg)  # a dead connection is reported by the reader thread

    def _journal(self, slot: _Slot, key: str | None) -> None:
        """Record which stage a worker runs, so a later launcher can adopt it."""
        path = self.run_dir / f"{slot.name}.running"
        if key is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(key, encoding="utf-8")

    # -- events from workers ---------------------------------------------------------

    def _handle(self, item: Inbound) -> None:
        slot = self._slots.get(item.slot)
        if slot is None or item.generation != slot.generation or self._closed:
            return  # a retired or replaced worker's last words
        msg = item.message
        if msg is None:
            self._lost(slot, item.error)
        elif isinstance(msg, Hello):
            self._hello(slot, msg)
        elif isinstance(msg, StageStarted):
            if slot.running is not None and msg.key == slot.running.key:
                self._events.append(StageRunning(msg.key, self._clock()))
        else:
            self._outcome(slot, msg)

    def _hello(self, slot: _Slot, hello: Hello) -> None:
        slot.ready = True
        slot.start_failures = 0
        for outcome in hello.undelivered:
            if outcome.key in slot.adopted:
                slot.adopted.discard(outcome.key)
                self._report(outcome)
        for key in sorted(slot.adopted):  # idle worker, no outcome: it went to the old launcher
            self._fail(key, "error", "its outcome was delivered to the previous launcher")
        slot.adopted.clear()
        self._journal(slot, None)
        self._dispatch(slot)

    def _outcome(self, slot: _Slot, outcome: StageResult | StageFailure) -> None:
        if slot.running is None or outcome.key != slot.running.key:
            return
        slot.running = None
        self._journal(slot, None)
        self._report(outcome)
        if isinstance(outcome, StageFailure) and outcome.restart:
            self._restart(slot, f"{outcome.reason}: {outcome.message}")
        else:
            self._dispatch(slot)

    def _report(self, outcome: StageResult | StageFailure) -> None:
        if isinstance(outcome, StageResult):
            self._events.append(StageSucceeded(outcome.key, self._clock(), outcome))
        else:
            self._fail(outcome.key, outcome.reason, outcome.message)

    def _lost(self, slot: _Slot, error: str) -> None:
        """The worker's connection ended: fail what it ran, replace it (or give up)."""
        assert slot.worker is not None
        how = slot.worker.describe_exit()
        who = f"device worker {slot.binding.label} (pid {slot.worker.pid})"
        log = self.log_path(slot.devices)
        if slot.running is not None:
            key = slot.running.key
            slot.running = None
            self._fail(key, "worker-died", f"{who} {how} while running stage {key}; log: {log}")
        for key in sorted(slot.adopted):
            self._fail(key, "worker-died", f"{who} {how} before its outcome was read; log: {log}")
        slot.adopted.clear()
        if not slot.ready:
            slot.start_failures += 1
            if slot.start_failures >= self._max_start_failures:
                self._break(
                    slot,
                    f"{who} failed to start {slot.start_failures} times "
                    f"({how}: {error}); log: {log}",
                )
                return
        self._restart(slot, f"{who} {how}")

    def _break(self, slot: _Slot, message: str) -> None:
        slot.broken = message
        if slot.worker is not None:
            slot.worker.kill()
        self._journal(slot, None)
        while slot.queue:
            self._fail(slot.queue.popleft().key, "worker-broken", message)

    def _fail(self, key: str, reason: FailureReason, message: str) -> None:
        self._events.append(StageFailed(key, self._clock(), reason, message))

    # -- timeouts --------------------------------------------------------------------

    def _next_deadline(self) -> float:
        times = [s.deadline for s in self._slots.values() if s.running is not None]
        times += [
            s.spawned_at + self._start_timeout_s
            for s in self._slots.values()
            if not s.ready and s.broken is None
        ]
        return min(times, default=float("inf"))

    def _check_deadlines(self) -> None:
        now = self._clock()
        for slot in list(self._slots.values()):
            if slot.broken is not None:
                continue
            if slot.running is not None and now >= slot.deadline:
                launch, slot.running = slot.running, None
                self._fail(
                    launch.key,
                    "timeout",
                    f"stage {launch.key} did not finish within {launch.timeout_s:g} s "
                    f"on {slot.binding.label}; worker replaced",
                )
                self._restart(slot, f"stage {launch.key} timed out")
            elif (
                not slot.ready
                and slot.worker is not None
                and now - slot.spawned_at >= self._start_timeout_s
            ):
                slot.worker.kill()  # the reader thread reports the lost connection


def _slot_name(devices: tuple[int, ...]) -> str:
    return "w" + "-".join(str(d) for d in devices)


def _slot_devices(name: str) -> tuple[int, ...] | None:
    with contextlib.suppress(ValueError):
        return tuple(int(x) for x in name.removeprefix("w").split("-"))
    return None
