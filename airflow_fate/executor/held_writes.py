"""Store writes that wait out a database outage instead of being dropped.

The executor writes a placement row when it launches a try, the pid when the process
starts, the outcome when it ends, and each node's residency after every change. If the
database is unreachable (restarting, failing over, a network cut), the scheduler loop
must go on placing and finishing work, and the rows must still arrive: a lost
``record_launch`` would leave a try that ran with no placement at all, which neither the
restart path nor the UI can recover.

So every write goes through `HeldWrites`: it is tried at once when nothing is held, and
otherwise queued behind the held ones, in order (a try's launch, pid and end must land
in that order). While the database refuses writes, retries are spaced by a growing
back-off, so a dead database costs the scheduler one failed connection per back-off
step rather than one per write. Writes that replace a whole node's rows (residency,
prefix KV) carry a ``replaces`` key: a newer one drops the held older one, since only
the last state matters.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.exc import SQLAlchemyError

FIRST_RETRY_S = 1.0
"""Wait before the first retry after the database refused a write."""

MAX_RETRY_S = 15.0
"""Longest wait between retries during an outage."""


class Log(Protocol):
    """What `HeldWrites` logs through (Airflow's executor logger, or `logging`'s)."""

    def error(self, event: Any, *args: Any) -> Any: ...

    def warning(self, event: Any, *args: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class _Write:
    call: Callable[..., None]
    args: tuple[Any, ...]
    replaces: Hashable | None


class HeldWrites:
    """Ordered store writes; those the database refuses are retried until it is back."""

    def __init__(self, log: Log, clock: Callable[[], float] = time.monotonic) -> None:
        self._log = log
        self._clock = clock
        self._held: deque[_Write] = deque()
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._backoff_s = FIRST_RETRY_S
        self.written_late = 0
        """Writes that reached the database only after an outage (for the logs and tests)."""

    @property
    def held(self) -> int:
        """How many writes wait for the database."""
        return len(self._held)

    @property
    def outage_s(self) -> float:
        """Seconds since the database first refused a write (0 while it accepts them)."""
        return 0.0 if self._down_since is None else self._clock() - self._down_since

    def submit(
        self, call: Callable[..., None], *args: Any, replaces: Hashable | None = None
    ) -> None:
        """Write now, or hold the write behind those already waiting."""
        if replaces is not None:
            self._held = deque(w for w in self._held if w.replaces != replaces)
        self._held.append(_Write(call, args, replaces))
        self.flush()

    def flush(self) -> int:
        """Write held writes in order until one fails; how many were written."""
        if not self._held or self._clock() < self._retry_at:
            return 0
        written = 0
        while self._held:
            write = self._held[0]
            try:
                write.call(*write.args)
            except SQLAlchemyError as exc:
                self._refused(write, exc)
                return written
            self._held.popleft()
            written += 1
        if self._down_since is not None:
            self._back(written)
        return written

    def _refused(self, write: _Write, exc: SQLAlchemyError) -> None:
        now = self._clock()
        if self._down_since is None:
            self._down_since = now
            self._log.error(
                "FATE store write %s failed; holding it and later writes until the "
                "database accepts them again: %s",
                getattr(write.call, "__name__", "write"),
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            )
        else:
            self._backoff_s = min(self._backoff_s * 2, MAX_RETRY_S)
        self._retry_at = now + self._backoff_s
        self._log.warning(
            "FATE store unreachable for %.0f s; %d writes held, next try in %.0f s",
            now - self._down_since,
            len(self._held),
            self._backoff_s,
        )

    def _back(self, written: int) -> None:
        self.written_late += written
        self._log.warning(
            "FATE store reachable again after %.0f s; wrote %d held writes",
            self.outage_s,
            written,
        )
        self._down_since = None
        self._retry_at = 0.0
        self._backoff_s = FIRST_RETRY_S
