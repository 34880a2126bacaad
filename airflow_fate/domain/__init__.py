"""Domain model: clusters, model catalogs, workloads and plans, with their file loaders."""

from __future__ import annotations

from airflow_fate.domain.cluster import Cluster, GpuType, Interconnect, NodeSpec
from airflow_fate.domain.graph import StageInfo, WorkloadGraph
from airflow_fate.domain.models import ModelCatalog, ModelSpec
from airflow_fate.domain.plan import Assignment, DecisionRecord, Plan
from airflow_fate.domain.workload import PrefixSpec, StageSpec, WorkflowSpec, Workload

__all__ = [
    "Assignment",
    "Cluster",
    "DecisionRecord",
    "GpuType",
    "Interconnect",
    "ModelCatalog",
    "ModelSpec",
    "NodeSpec",
    "Plan",
    "PrefixSpec",
    "StageInfo",
    "StageSpec",
    "WorkflowSpec",
    "Workload",
    "WorkloadGraph",
]
