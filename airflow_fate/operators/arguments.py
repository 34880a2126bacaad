"""Checks of what DAG authors pass to FATE operators, run when the DAG file is parsed.

A wrong argument shows up as the DAG file's import error in Airflow's UI. Without these
checks a prompt given as a number or a token count given as text failed deep inside a
size estimate (``TypeError: object of type 'int' has no len()``), naming neither the task
nor the argument. `StageArgumentError` says ``max_new_tokens= must be a whole number``;
the classic operators add the task (`for_task`), the TaskFlow decorators add decorator
and task themselves.

No Airflow imports: the operators and the TaskFlow decorators share these checks.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

MAX_COUNT = 10**12
"""Largest token count, shard count or other whole number a stage argument may hold: a
trillion tokens is far beyond any batch, and the cost model's arithmetic stays exact."""


class StageArgumentError(ValueError):
    """A FATE operator argument the planner cannot use.

    Attributes:
        argument: the keyword argument at fault (``max_new_tokens``).
        reason: the message without the task, naming the argument.
        task_id: the task, once known (`for_task`); the message then starts with it.
    """

    def __init__(self, argument: str, reason: str, task_id: str | None = None) -> None:
        self.argument = argument
        self.reason = reason
        self.task_id = task_id
        super().__init__(reason if task_id is None else f"task {task_id!r}: {reason}")


@contextmanager
def for_task(task_id: object) -> Iterator[None]:
    """Name ``task_id`` in a `StageArgumentError` raised inside (the classic operators)."""
    try:
        yield
    except StageArgumentError as exc:
        if exc.task_id is not None:
            raise
        raise StageArgumentError(exc.argument, exc.reason, str(task_id)) from None


def _kind(value: object) -> str:
    return "nothing" if value is None else type(value).__name__


def whole(name: str, value: object, minimum: int, *, optional: bool = False) -> int | None:
    """``value`` as a whole number in ``[minimum, MAX_COUNT]`` (or None when optional)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise StageArgumentError(name, f"{name}= must be a whole number, got {_kind(value)}")
    if value < minimum:
        raise StageArgumentError(name, f"{name}= must be >= {minimum}, got {value}")
    if value > MAX_COUNT:
        raise StageArgumentError(name, f"{name}= must be at most {MAX_COUNT}, got {value}")
    return value


def number(name: str, value: object, minimum: float, *, optional: bool = False) -> float | None:
    """``value`` as a finite number >= ``minimum`` (or None when optional)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StageArgumentError(name, f"{name}= must be a number, got {_kind(value)}")
    if not math.isfinite(value) or value < minimum:
        raise StageArgumentError(name, f"{name}= must be a finite number >= {minimum}, got {value}")
    return float(value)


def text(name: str, value: object, *, optional: bool = False, empty: bool = True) -> str | None:
    """``value`` as a string (or None when optional); ``empty=False`` refuses ``""``."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise StageArgumentError(name, f"{name}= must be a string, got {_kind(value)}")
    if not empty and not value:
        raise StageArgumentError(name, f"{name}= must not be empty")
    return value


def templates(name: str, value: object) -> list[str]:
    """One template or a list of templates, as a list of strings."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        kind = _kind(value) if not isinstance(value, list | tuple) else "a list holding non-strings"
        raise StageArgumentError(name, f"{name}= must be a string or a list of strings, got {kind}")
    return list(value)


def counts(name: str, values: Sequence[Any]) -> list[int]:
    """Per-item token counts (the stage bases' ``prompt_tokens`` and friends)."""
    return [whole(f"{name}[{i}]", v, 0) or 0 for i, v in enumerate(values)]
