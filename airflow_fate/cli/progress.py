"""Progress of long commands on stderr: a rich bar on a terminal, sparse lines in a log.

A user who redirects a command's output to a file (CI, ``nohup``, a scheduler's log)
still needs to see that it is alive and how far it got, so on a non-terminal stderr the
bar becomes a plain line at each tenth of the way (and at the end), with elapsed seconds.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

LOG_STEPS = 10
"""A non-terminal stream gets about this many progress lines per bar."""


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """Yield ``update(done, total)``: a bar on an interactive stderr, lines otherwise."""
    console = Console(stderr=True)
    if not console.is_terminal:
        yield log_lines(label, sys.stderr)
        return
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def log_lines(label: str, stream: TextIO) -> Callable[[int, int], None]:
    """``update(done, total)`` that writes ``label: done/total (N s)`` at each tenth."""
    started = time.monotonic()
    last_step, last_done = -1, 0

    def update(done: int, total: int) -> None:
        nonlocal last_step, last_done
        if total <= 0 or done <= last_done:
            return
        step = done * LOG_STEPS // total
        if step == last_step and done < total:
            return
        last_step, last_done = step, done
        elapsed = time.monotonic() - started
        stream.write(f"{label}: {done}/{total} ({elapsed:.0f} s)\n")
        stream.flush()

    return update
