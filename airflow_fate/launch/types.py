"""The `Launcher` protocol for stage launchers, and the messages it takes and returns.

Decide, act, observe: the caller (live engine, executor) decides where a stage runs and
calls `Launcher.launch`; `Launcher.poll` returns what happened since, as small immutable
events. A launched stage ends in exactly one `StageSucceeded` or `StageFailed`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from airflow_fate.runtime.protocol import FailureReason, StageRequest, StageResult


@dataclass(frozen=True, slots=True)
class StageLaunch:
    """Run ``request`` on ``devices`` (global GPU indices of the cluster, one node).

    Attributes:
        key: unique id of this stage run (``workflow/stage`` in the live engine).
        devices: the GPU set the planner chose.
        request: the work, in the runtime protocol.
        timeout_s: the stage fails with ``timeout`` if it has not finished this many
            seconds after it starts running (queueing time is not counted).
    """

    key: str
    devices: tuple[int, ...]
    request: StageRequest
    timeout_s: float = 600.0


@dataclass(frozen=True, slots=True)
class StageRunning:
    """A device worker began the stage (``at``: launcher clock, monotonic seconds)."""

    key: str
    at: float


@dataclass(frozen=True, slots=True)
class StageSucceeded:
    key: str
    at: float
    result: StageResult


@dataclass(frozen=True, slots=True)
class StageFailed:
    """The stage did not complete; ``message`` says why in words a user can act on."""

    key: str
    at: float
    reason: FailureReason
    message: str


@dataclass(frozen=True, slots=True)
class WorkerRestarted:
    """A device worker was replaced (after a crash, an out-of-memory, a cancel)."""

    devices: tuple[int, ...]
    at: float
    cause: str


LaunchEvent = StageRunning | StageSucceeded | StageFailed | WorkerRestarted


class Launcher(Protocol):
    """Starts stages on devices and reports their progress."""

    def launch(self, launch: StageLaunch) -> None:
        """Queue ``launch`` on its devices; it starts when they are free."""
        ...

    def poll(self, timeout_s: float = 0.0) -> list[LaunchEvent]:
        """Events since the last call, waiting up to ``timeout_s`` for the first one."""
        ...

    def cancel(self, key: str) -> None:
        """Stop a queued or running stage; it ends with a ``cancelled`` `StageFailed`."""
        ...

    def adopt(self, keys: Sequence[str]) -> list[str]:
        """Take over stages started by an earlier launcher; returns the keys adopted."""
        ...

    def close(self) -> None:
        """Stop every worker; outstanding stages are abandoned without events."""
        ...
