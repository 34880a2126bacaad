"""One device worker driven stage by stage, for measurements.

`airflow-fate run` hands stages to a `LocalLauncher`, which queues, restarts and times
out on its own; a calibration wants the opposite: one worker, one stage at a time,
nothing hidden between a request and its timings. `WorkerSession` spawns the same worker
process (``python -m airflow_fate.runtime.worker``) pinned to one device, so the figures
are the runtime's own, taken where stages really run.
"""

from __future__ import annotations

from pathlib import Path
from queue import Empty, Queue
from types import TracebackType

from airflow_fate.launch.worker_process import FromWorker, Inbound, WorkerProcess
from airflow_fate.runtime.binding import DeviceBinding, WorkerConfig
from airflow_fate.runtime.protocol import (
    Hello,
    RunStage,
    StageFailure,
    StageRequest,
    StageResult,
    StageStarted,
)

STOP_TIMEOUT_S = 30.0


class MeasurementError(RuntimeError):
    """A stage of the calibration failed or the worker went away; says which and why."""


class WorkerSession:
    """A worker pinned to ``binding``; use as a context manager, then `run` stages.

    Args:
        binding: the device (from the inventory, with the cluster's memory budgets).
        run_dir: where the worker's socket and log go.
        start_timeout_s: how long the worker may take to start and say hello.
        stage_timeout_s: how long one stage (load included) may take.
    """

    def __init__(
        self,
        binding: DeviceBinding,
        run_dir: Path,
        *,
        start_timeout_s: float = 180.0,
        stage_timeout_s: float = 600.0,
    ) -> None:
        self.binding = binding
        name = binding.label.replace(",", "+").replace("/", "_")
        self.log_path = run_dir / f"calibrate-{name}.log"
        self._socket = run_dir / f"calibrate-{name}.sock"
        self._start_timeout_s = start_timeout_s
        self._stage_timeout_s = stage_timeout_s
        self._inbox: Queue[Inbound] = Queue()
        self._worker = WorkerProcess((0,), 0, self._socket, self.log_path, self._inbox)

    def __enter__(self) -> WorkerSession:
        config = WorkerConfig(
            binding=self.binding,
            socket_path=str(self._socket),
            accept_timeout_s=self._start_timeout_s,
        )
        self._worker.spawn(config, connect_timeout_s=self._start_timeout_s)
        try:
            hello = self._receive("its hello", self._start_timeout_s)
            if not isinstance(hello, Hello):
                raise MeasurementError(f"worker said {hello.kind!r} before hello")
        except BaseException:
            self._worker.kill()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._worker.stop(timeout_s=STOP_TIMEOUT_S)

    def run(self, key: str, request: StageRequest) -> StageResult:
        """Run one stage and return its result.

        Raises:
            MeasurementError: the stage failed, timed out, or the worker died.
        """
        message = RunStage(key=key, devices=self.binding.ids, request=request)
        if not self._worker.send(message):
            raise MeasurementError(f"{key}: the worker's connection is gone; see {self.log_path}")
        while True:
            reply = self._receive(f"the outcome of {key}", self._stage_timeout_s)
            if isinstance(reply, StageStarted):
                continue
            if isinstance(reply, StageFailure):
                raise MeasurementError(f"{key} failed ({reply.reason}): {reply.message}")
            if isinstance(reply, StageResult):
                return reply

    def _receive(self, what: str, timeout_s: float) -> FromWorker:
        try:
            item = self._inbox.get(timeout=timeout_s)
        except Empty:
            raise MeasurementError(
                f"no {what} from the worker within {timeout_s:g} s; see {self.log_path}"
            ) from None
        if item.message is None:
            raise MeasurementError(
                f"the worker {self._worker.describe_exit()} ({item.error}) while waiting "
                f"for {what}; see {self.log_path}"
            )
        return item.message
