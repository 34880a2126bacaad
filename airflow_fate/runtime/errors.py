"""`StageError`: a stage that cannot run, with the failure class the launcher reports."""

from __future__ import annotations

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
