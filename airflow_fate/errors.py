"""Errors a user can act on.

`InputError` carries the file, the path inside it and the reason, so the CLI can print one
line such as ``workload.json: workflows[3].stages[1].parents[0]: unknown stage 'x'`` and
exit with code 2 instead of showing a traceback.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence


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


_PLAIN_KEY = re.compile(r"[^\s\[\]\"']+")


def format_loc(loc: Sequence[int | str]) -> str:
    """Render a pydantic error location as ``a.b[3].c``.

    A key a reader could not find as written (empty, or holding spaces, line breaks,
    brackets or quotes) is quoted as ``a["two words"]``, so the path stays on one line
    and names exactly one spot.
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _PLAIN_KEY.fullmatch(part):
            out += f"[{json.dumps(part)}]"
        else:
            out += f".{part}" if out else part
    return out
