"""Put a model's files in, or out of, the operating system's page cache.

The cost model prices a load by the tier the weights come from: the node's host cache
(files already in RAM) or its local disk. A worker cannot tell the two apart, so the
calibration decides which one it measures by dropping the files' cached pages (Linux
``posix_fadvise(DONTNEED)``, no privileges needed for clean pages) or by reading them
once before the load.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

from airflow_fate.runtime.protocol import ModelSource

_CHUNK = 16 << 20


def model_files(source: ModelSource) -> list[Path]:
    """The files a load of ``source`` reads: the GGUF file, or the model directory's."""
    directory = Path(source.directory)
    if source.gguf_file:
        return [directory / source.gguf_file]
    return sorted(p for p in directory.rglob("*") if p.is_file() and not p.name.startswith("."))


def can_drop() -> bool:
    """Whether this platform can evict a file's pages (the disk tier is measurable)."""
    return hasattr(os, "posix_fadvise") and hasattr(os, "POSIX_FADV_DONTNEED")


def drop(paths: Iterable[Path]) -> None:
    """Evict the files' clean pages from the page cache (best effort, Linux)."""
    if not can_drop():
        return
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            with contextlib.suppress(OSError):
                os.fsync(fd)  # pages still dirty (a file just written) cannot be dropped
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def warm(paths: Iterable[Path]) -> None:
    """Read the files once so the next load finds them in host memory."""
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            while f.read(_CHUNK):
                pass
