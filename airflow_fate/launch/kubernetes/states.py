"""Pod phase -> task state, as a pure function of the pod's JSON.

The phase alone is not enough: a pod whose image cannot be pulled stays ``Pending``
forever, so ``Pending`` with a fatal waiting reason counts as failed; a pod the scheduler
cannot place is flagged so the launcher can time it out (it is pinned to one node).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class PodState(StrEnum):
    """The launcher's view of a pod."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class PodStatus:
    """`PodState` plus the facts that explain it.

    Attributes:
        state: the mapped state.
        reason: why, for ``FAILED`` (and the scheduler's message when unschedulable).
        unschedulable: ``PodScheduled=False`` with reason ``Unschedulable``.
        node: ``spec.nodeName`` once bound.
    """

    state: PodState
    reason: str = ""
    unschedulable: bool = False
    node: str | None = None


def _container_statuses(status: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]


def _fatal_waiting(status: Mapping[str, Any], fatal: Collection[str]) -> str | None:
    for cs in _container_statuses(status):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in fatal:
            message = waiting.get("message") or ""
            return f"container {cs.get('name', '?')}: {reason}" + (
                f": {message}" if message else ""
            )
    return None


def _failure_reason(status: Mapping[str, Any]) -> str:
    parts: list[str] = []
    if status.get("reason"):
        parts.append(str(status["reason"]))
    if status.get("message"):
        parts.append(str(status["message"]))
    for cs in _container_statuses(status):
        term = (cs.get("state") or {}).get("terminated") or {}
        code = term.get("exitCode")
        if code not in (None, 0):
            why = term.get("reason") or "Error"
            parts.append(f"container {cs.get('name', '?')}: {why}, exit code {code}")
    return "; ".join(parts) or "pod failed"


def _unschedulable(status: Mapping[str, Any]) -> str | None:
    for cond in status.get("conditions") or []:
        if (
            cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
            and cond.get("reason") == "Unschedulable"
        ):
            return str(cond.get("message") or "Unschedulable")
    return None


def read_pod_status(pod: Mapping[str, Any], fatal_waiting_reasons: Collection[str]) -> PodStatus:
    """Map a pod (as JSON) to a `PodStatus`.

    Args:
        pod: the pod object, camelCase keys as the API serves it.
        fatal_waiting_reasons: container ``waiting`` reasons that fail a ``Pending`` pod.
    """
    status = pod.get("status") or {}
    node = (pod.get("spec") or {}).get("nodeName")
    phase = status.get("phase")
    if phase == "Succeeded":
        return PodStatus(PodState.SUCCEEDED, node=node)
    if phase == "Failed":
        return PodStatus(PodState.FAILED, reason=_failure_reason(status), node=node)
    if phase == "Running":
        return PodStatus(PodState.RUNNING, node=node)
    if phase in (None, "Pending"):
        fatal = _fatal_waiting(status, fatal_waiting_reasons)
        if fatal is not None:
            return PodStatus(PodState.FAILED, reason=f"Pending with {fatal}", node=node)
        message = _unschedulable(status)
        if message is not None:
            return PodStatus(PodState.PENDING, reason=message, unschedulable=True, node=node)
        return PodStatus(PodState.PENDING, node=node)
    return PodStatus(PodState.UNKNOWN, reason=f"phase {phase}", node=node)
