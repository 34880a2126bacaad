"""Errors a user can act on.

`InputError` carries the file, the path inside it and the reason, so the CLI can print one
line such as ``workload.json: workflows[3].stages[1].parents[0]: unknown stage 'x'`` and
exit with code 2 instead of showing a traceback.
"""

from __future__ import annotations


class InputError(Exception):
    """A user-supplied file (or value) is invalid.

    Attributes:
        source: file path, or a short label such as ``--workload`` for values not from a file.
        path: location inside the document (``workflows[3].stages[1].parents[0]``), or ``""``.
        reason: what is wrong, in words.
    """

    def __init__(self, source: str, path: str, reason: str) -> None:
        self.source = source
        self.path = path
        self.reason = reason
        where = f"{source}: {path}" if path else source
        super().__init__(f"{where}: {reason}")


class SimulationError(RuntimeError):
    """The simulator reached a state a correct policy can never produce (e.g. a stall)."""


class UnrunStagesError(SimulationError):
    """A run ended with stages never run; the message names them and says why.

    Unlike its parent (a policy bug, which keeps its traceback), this is an outcome a
    user can act on: a model that fits no node, a policy that cannot place a layout.
    """
