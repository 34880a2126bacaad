"""`StageError`: a stage that cannot run, with the failure class the launcher reports."""

from __future__ import annotations

import errno

from airflow_fate.runtime.protocol import FailureReason


class StageError(Exception):
    """A stage failed for a reason the user can act on.

    Attributes:
        reason: the failure class (``unknown-model``, ``context-length``...).
        message: what went wrong, naming the model, file or limit involved.
        restart: whether the worker's state may be damaged and it should be replaced.
    """

    def __init__(self, reason: FailureReason, message: str, *, restart: bool = False) -> None:
        super().__init__(message)
        self.reason: FailureReason = reason
        self.message = message
        self.restart = restart


_ALLOCATOR_MESSAGES = ("can't allocate memory", "out of memory")
"""How allocators other than Python's say so: torch's CPU allocator raises a plain
``RuntimeError`` ("DefaultCPUAllocator: can't allocate memory"), and some CUDA paths
raise ``RuntimeError`` ("CUDA out of memory") rather than ``torch.OutOfMemoryError``."""


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says the process or its device ran out of memory.

    Recognised by class and message rather than by importing torch, so the worker's
    stage loop can classify failures before torch is loaded. Matters because an
    out-of-memory failure replaces the worker (its allocator state is suspect), while
    an ordinary ``RuntimeError`` does not.
    """
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    if isinstance(exc, OSError):  # mmap of a weights file, for one
        return exc.errno == errno.ENOMEM
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(m in text for m in _ALLOCATOR_MESSAGES)


PROBE_BYTES = 32 * 1024**2
"""What `memory_exhausted` tries to allocate: more than any bookkeeping after a failed
stage needs, small enough to fit in any process that is not out of memory."""


def memory_exhausted(probe_bytes: int = PROBE_BYTES) -> bool:
    """Whether this process can no longer allocate ``probe_bytes``.

    An allocation that fails deep in native code does not always surface as an
    out-of-memory error: it can come back as a ``SystemError`` ("error return without
    exception set") or a library's own message. After an unexpected failure the worker
    asks this, so a starved process is reported (and replaced) as out of memory instead
    of taking the next stage down with it.
    """
    try:
        probe = bytearray(probe_bytes)
    except MemoryError:
        return True
    del probe
    return False
