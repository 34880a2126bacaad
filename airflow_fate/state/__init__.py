"""Cluster state: the only mutable bookkeeping; planners see immutable snapshots."""

from __future__ import annotations

from airflow_fate.state.cluster_state import (
    ClusterState,
    Event,
    GpuState,
    NodeState,
    PendingStage,
    Snapshot,
    StageAssigned,
    StageFinished,
    StageStarted,
    WorkflowArrived,
)

__all__ = [
    "ClusterState",
    "Event",
    "GpuState",
    "NodeState",
    "PendingStage",
    "Snapshot",
    "StageAssigned",
    "StageFinished",
    "StageStarted",
    "WorkflowArrived",
]
