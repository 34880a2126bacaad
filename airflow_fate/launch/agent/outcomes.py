"""How the tries a task agent was given ended, read from its report (`AgentState`).

The executor tracks which tries it handed to which agent; each report the agent sends
says which of them still run. This is the translation from one report to outcomes,
kept apart from the launcher that acts on them so the rules are stated (and tested)
once: a try whose process exited 0 succeeded, one that exited otherwise failed with its
code, and one the agent no longer knows (its pod or agent restarted and lost it) failed
as such. Only the tries the agent still knows may be forgotten there afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from airflow_fate.launch.agent.messages import AgentState
from airflow_fate.launch.types import EventKind, TaskKey


@dataclass(frozen=True, slots=True)
class TaskOutcome:
    """One tracked try that no longer runs.

    Attributes:
        key: the try.
        kind: `EventKind.SUCCEEDED` or `EventKind.FAILED`.
        reason: why it failed, naming where it ran ("" on success).
        reported: whether the agent reported it (so the agent can be told to forget it).
    """

    key: TaskKey
    kind: EventKind
    reason: str = ""
    reported: bool = True


def ended_tries(tracked: Iterable[TaskKey], state: AgentState, where: str) -> list[TaskOutcome]:
    """Outcomes of the ``tracked`` tries that no longer run, in key order.

    ``where`` names the agent's pod for the reasons, e.g. ``worker pod p on node n``.
    """
    out: list[TaskOutcome] = []
    for key in sorted(tracked, key=str):
        report = state.task(key)
        if report is None:
            reason = f"{where} no longer knows the task"
            out.append(TaskOutcome(key, EventKind.FAILED, reason, reported=False))
        elif report.running:
            continue
        elif report.exit_code == 0:
            out.append(TaskOutcome(key, EventKind.SUCCEEDED))
        else:
            reason = f"task process in {where} exited with code {report.exit_code}"
            out.append(TaskOutcome(key, EventKind.FAILED, reason))
    return out
