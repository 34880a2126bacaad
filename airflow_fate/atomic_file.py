"""Write a file atomically, with the permissions any other output gets.

Every output of the project (workloads, catalogs, correction state) is written to a
temporary file beside its destination, optionally checked there, then renamed over it:
a crash or a rejected document never leaves a half-written or invalid file behind.
``tempfile.mkstemp`` creates the temporary file owner-only (0600); the rename would keep
that mode, so it is set to what ``open()`` would have given (0666 less the umask).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def current_umask() -> int:
    """The process umask (reading it requires setting it; restored at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomically(path: Path, text: str, check: Callable[[Path], object] | None = None) -> None:
    """Write ``text`` to ``path`` via a temporary file that ``check`` may inspect first.

    Args:
        path: the destination; its folder is created.
        text: the whole content (UTF-8).
        check: called with the temporary file's path before the rename; an exception
            from it propagates and leaves ``path`` untouched. The temporary file sits
            in ``path``'s folder, so relative paths inside the document resolve alike.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # The same suffix as the destination: loaders that ``check`` uses may go by it.
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o666 & ~current_umask())
        if check is not None:
            check(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
