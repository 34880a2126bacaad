"""A DAG run as the planner sees it: its FATE stages and how they depend on each other.

The executor learns a DAG's shape from its serialized form (task ids, upstream ids and
each task's ``executor_config``). Tasks with valid ``fate`` metadata become stages;
other tasks are CPU tasks, which the planner never sees, so a stage's parents are its
nearest FATE ancestors through any CPU tasks in between (their outputs still flow along
the DAG's edges). Stages whose metadata is invalid, or whose model the catalog lacks or
no node can hold, are *rejected*: the executor fails their tasks with the reason.

Pure: no Airflow imports, so it is unit-tested on plain task lists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.models import ModelCatalog
from airflow_fate.domain.workload import WorkflowSpec, Workload
from airflow_fate.operators.metadata import MetadataError, StageMetadata, read_metadata


@dataclass(frozen=True, slots=True)
class TaskNode:
    """One task of a DAG: its id, its direct upstream task ids and its executor_config."""

    task_id: str
    upstream: tuple[str, ...]
    executor_config: Mapping[str, Any] | None


@dataclass(frozen=True)
class RunLayout:
    """The planner's view of one DAG run.

    Attributes:
        stages: valid stages by task id, in the DAG's task order.
        parents: each stage's nearest stage ancestors (task ids).
        rejected: task id -> why its ``fate`` metadata cannot be planned.
    """

    stages: dict[str, StageMetadata] = field(default_factory=dict)
    parents: dict[str, list[str]] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)

    def workflow(self, workflow_id: str, template: str | None, arrival_s: float) -> WorkflowSpec:
        """The workload workflow of this run (None-free; needs at least one stage)."""
        return WorkflowSpec(
            id=workflow_id,
            template=template,
            arrival_s=arrival_s,
            stages=[m.stage_spec(t, self.parents[t]) for t, m in self.stages.items()],
        )


def stage_problem(
    metadata: StageMetadata, catalog: ModelCatalog, cluster: Cluster | None
) -> str | None:
    """Why a stage cannot be planned (unknown model, shard bounds, fits no node), or None."""
    probe = Workload(
        workflows=[
            WorkflowSpec(id="probe", arrival_s=0.0, stages=[metadata.stage_spec("probe", [])])
        ]
    )
    errors = probe.reference_errors(catalog, cluster)
    if not errors:
        return None
    path, reason = errors[0]
    field_name = path.rsplit(".", 1)[-1] if path.endswith(("model", "shards")) else ""
    return f'executor_config["fate"]{"." + field_name if field_name else ""}: {reason}'


def build_layout(
    tasks: Sequence[TaskNode], catalog: ModelCatalog, cluster: Cluster | None = None
) -> RunLayout:
    """The stages of a DAG (in ``tasks`` order) and their nearest stage ancestors."""
    layout = RunLayout()
    by_id = {t.task_id: t for t in tasks}
    for t in tasks:
        try:
            metadata = read_metadata(t.executor_config)
        except MetadataError as exc:
            layout.rejected[t.task_id] = str(exc)
            continue
        if metadata is None:
            continue
        problem = stage_problem(metadata, catalog, cluster)
        if problem is not None:
            layout.rejected[t.task_id] = problem
        else:
            layout.stages[t.task_id] = metadata
    for task_id in layout.stages:
        layout.parents[task_id] = _stage_ancestors(task_id, by_id, layout.stages)
    return layout


def _stage_ancestors(
    task_id: str, by_id: Mapping[str, TaskNode], stages: Mapping[str, StageMetadata]
) -> list[str]:
    """Nearest stages upstream of ``task_id``, looking through non-stage tasks."""
    found: list[str] = []
    seen: set[str] = set()
    todo = list(by_id[task_id].upstream)
    while todo:
        up = todo.pop(0)
        if up in seen or up not in by_id:
            continue
        seen.add(up)
        if up in stages:
            found.append(up)
        else:
            todo.extend(by_id[up].upstream)
    return sorted(found, key=list(stages).index)
