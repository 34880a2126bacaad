"""A workload flattened for hot loops: stages as dense integer ids with resolved fields.

Planners and the simulator touch stages millions of times; pydantic attribute access and
string keys are too slow there, so `WorkloadGraph` resolves everything once (parents and
children as ids, effective shard bounds, bytes) into frozen slotted dataclasses.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace

from airflow_fate.domain.models import ModelCatalog
from airflow_fate.domain.workload import WorkflowSpec, Workload

MB = 1_000_000


@dataclass(frozen=True, slots=True)
class StageInfo:
    """One stage, resolved. ``uid`` is its dense index in `WorkloadGraph.stages`."""

    uid: int
    workflow: int
    workflow_id: str
    stage_id: str
    model: str
    input_tokens: int
    output_tokens: int
    output_bytes: float
    prefix_id: str | None
    prefix_tokens: int
    parents: tuple[int, ...]
    children: tuple[int, ...]
    min_shards: int
    max_shards: int

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class WorkflowInfo:
    """One workflow: its arrival time and its stages' uids (in file order)."""

    index: int
    id: str
    template: str | None
    arrival_s: float
    stages: tuple[int, ...]


@dataclass(frozen=True)
class Renumbering:
    """Where stages and workflows moved when workflows left a graph (`WorkloadGraph.without`).

    Attributes:
        stages: old uid -> new uid of every stage kept; dropped stages are absent.
        workflows: old index -> new index of every workflow kept.
    """

    stages: Mapping[int, int]
    workflows: Mapping[int, int]


@dataclass(frozen=True)
class WorkloadGraph:
    """All workflows' stages with dense ids; built once per run by `from_workload`."""

    stages: tuple[StageInfo, ...]
    workflows: tuple[WorkflowInfo, ...]

    @classmethod
    def from_workload(cls, workload: Workload, catalog: ModelCatalog) -> WorkloadGraph:
        return cls(stages=(), workflows=()).extend(workload.workflows, catalog)

    def extend(self, workflows: Sequence[WorkflowSpec], catalog: ModelCatalog) -> WorkloadGraph:
        """This graph with ``workflows`` appended (new uids and indices follow the old ones).

        For callers that learn workflows one at a time (the Airflow executor adds a DAG run
        when its first task is queued). Existing stages keep their uids, so state and
        planner caches keyed by uid or workflow index stay valid.
        """
        stages = list(self.stages)
        out = list(self.workflows)
        for wf in workflows:
            w = len(out)
            base = len(stages)
            local = {s.id: base + i for i, s in enumerate(wf.stages)}
            children: dict[int, list[int]] = {uid: [] for uid in local.values()}
            for s in wf.stages:
                for p in s.parents:
                    children[local[p]].append(local[s.id])
            for s in wf.stages:
                model = catalog.models[s.model]
                uid = local[s.id]
                stages.append(
                    StageInfo(
                        uid=uid,
                        workflow=w,
                        workflow_id=wf.id,
                        stage_id=s.id,
                        model=s.model,
                        input_tokens=s.input_tokens,
                        output_tokens=s.output_tokens,
                        output_bytes=s.output_mb * MB,
                        prefix_id=s.prefix.id if s.prefix else None,
                        prefix_tokens=s.prefix.tokens if s.prefix else 0,
                        parents=tuple(local[p] for p in s.parents),
                        children=tuple(children[uid]),
                        min_shards=s.min_shards or model.min_shards,
                        max_shards=s.max_shards or model.max_shards,
                    )
                )
            out.append(
                WorkflowInfo(
                    index=w,
                    id=wf.id,
                    template=wf.template,
                    arrival_s=wf.arrival_s,
                    stages=tuple(range(base, len(stages))),
                )
            )
        return WorkloadGraph(stages=tuple(stages), workflows=tuple(out))

    def without(self, workflows: Collection[int]) -> tuple[WorkloadGraph, Renumbering]:
        """This graph minus ``workflows``, the rest renumbered densely in the same order.

        For a graph that would otherwise grow for ever (the Airflow executor adds a
        workflow per DAG run): finished runs leave it. Uids and indices stay dense so hot
        loops keep indexing tuples; callers holding uids map them with the `Renumbering`.
        """
        drop = set(workflows)
        wf_map: dict[int, int] = {}
        uid_map: dict[int, int] = {}
        for wf in self.workflows:
            if wf.index not in drop:
                wf_map[wf.index] = len(wf_map)
                for uid in wf.stages:
                    uid_map[uid] = len(uid_map)
        stages = tuple(
            replace(
                s,
                uid=uid_map[s.uid],
                workflow=wf_map[s.workflow],
                parents=tuple(uid_map[p] for p in s.parents),
                children=tuple(uid_map[c] for c in s.children),
            )
            for s in self.stages
            if s.uid in uid_map
        )
        kept = tuple(
            replace(wf, index=wf_map[wf.index], stages=tuple(uid_map[u] for u in wf.stages))
            for wf in self.workflows
            if wf.index in wf_map
        )
        return WorkloadGraph(stages=stages, workflows=kept), Renumbering(uid_map, wf_map)

    def topological_order(self, workflow: int) -> list[int]:
        """Stage uids of one workflow, parents before children (Kahn, file order on ties)."""
        uids = self.workflows[workflow].stages
        indeg = {u: len(self.stages[u].parents) for u in uids}
        ready = [u for u in uids if indeg[u] == 0]
        order: list[int] = []
        while ready:
            u = ready.pop(0)
            order.append(u)
            for c in self.stages[u].children:
                indeg[c] -= 1
                if indeg[c] == 0:
                    ready.append(c)
        return order
