"""Workloads (the ``workload.json`` format): workflows of LLM stages with arrival times.

A workflow is a DAG of stages; a stage names a catalog model, its token counts, an
optional shared prompt prefix whose KV can be reused, its parents and its output size.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from airflow_fate.domain.cluster import FORMAT_VERSION, Cluster
from airflow_fate.domain.models import ModelCatalog
from airflow_fate.domain.shards import memory_per_gpu_gib, shard_degrees


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class PrefixSpec(_Strict):
    """A prompt prefix shared across stages; its KV is reusable on the same model."""

    id: str = Field(min_length=1)
    tokens: int = Field(gt=0)


class StageSpec(_Strict):
    """One LLM call (or batch of calls) in a workflow."""

    id: str = Field(min_length=1)
    model: str
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    output_mb: float = Field(default=0.0, ge=0)
    parents: list[str] = Field(default_factory=list)
    prefix: PrefixSpec | None = None
    min_shards: int | None = Field(default=None, ge=1)
    max_shards: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _prefix_within_input(self) -> StageSpec:
        if self.prefix is not None and self.prefix.tokens > self.input_tokens:
            raise ValueError(
                f"prefix.tokens ({self.prefix.tokens}) exceeds input_tokens ({self.input_tokens})"
            )
        return self


class WorkflowSpec(_Strict):
    """One DAG run: its stages and when it arrives."""

    id: str = Field(min_length=1)
    template: str | None = None
    arrival_s: float = Field(ge=0)
    stages: list[StageSpec] = Field(min_length=1)


class Workload(_Strict):
    """The ``workload.json`` document."""

    version: int = FORMAT_VERSION
    workflows: list[WorkflowSpec] = Field(min_length=1)

    def reference_errors(
        self, catalog: ModelCatalog, cluster: Cluster | None = None
    ) -> list[tuple[str, str]]:
        """Cross-file problems as ``(path, reason)`` pairs; empty when the workload is sound."""
        errors: list[tuple[str, str]] = []
        if self.version != FORMAT_VERSION:
            errors.append(
                ("version", f"unsupported version {self.version}; expected {FORMAT_VERSION}")
            )
        seen_wf: set[str] = set()
        for w, wf in enumerate(self.workflows):
            base = f"workflows[{w}]"
            if wf.id in seen_wf:
                errors.append((f"{base}.id", f"duplicate workflow id {wf.id!r}"))
            seen_wf.add(wf.id)
            errors.extend(_workflow_errors(base, wf, catalog, cluster))
        return errors


def _workflow_errors(
    base: str, wf: WorkflowSpec, catalog: ModelCatalog, cluster: Cluster | None
) -> list[tuple[str, str]]:
    errors: list[tuple[str, str]] = []
    ids: set[str] = set()
    for s, stage in enumerate(wf.stages):
        if stage.id in ids:
            errors.append((f"{base}.stages[{s}].id", f"duplicate stage id {stage.id!r}"))
        ids.add(stage.id)
    for s, stage in enumerate(wf.stages):
        where = f"{base}.stages[{s}]"
        for p, parent in enumerate(stage.parents):
            if parent == stage.id:
                errors.append(
                    (f"{where}.parents[{p}]", f"stage {stage.id!r} lists itself as parent")
                )
            elif parent not in ids:
                errors.append((f"{where}.parents[{p}]", f"unknown stage {parent!r}"))
        model = catalog.models.get(stage.model)
        if model is None:
            known = ", ".join(sorted(catalog.models))
            errors.append((f"{where}.model", f"unknown model {stage.model!r} (known: {known})"))
            continue
        lo = stage.min_shards or model.min_shards
        hi = stage.max_shards or model.max_shards
        if lo > hi:
            errors.append(
                (f"{where}.max_shards", f"min_shards ({lo}) is greater than max_shards ({hi})")
            )
        elif cluster is not None and not _fits_somewhere(cluster, catalog, stage, lo, hi):
            errors.append(
                (where, f"stage {stage.id!r} ({stage.model}) fits no node even at {hi} shards")
            )
    if not errors:
        cycle = _find_cycle(wf)
        if cycle:
            errors.append(
                (f"{base}.stages", "dependency cycle (stage -> parent): " + " -> ".join(cycle))
            )
    return errors


def _fits_somewhere(
    cluster: Cluster, catalog: ModelCatalog, stage: StageSpec, lo: int, hi: int
) -> bool:
    model = catalog.models[stage.model]
    tokens = stage.input_tokens + stage.output_tokens
    for node in cluster.nodes:
        usable = cluster.gpu_types[node.gpu_type].usable_gib
        for k in shard_degrees(lo, hi, node.gpu_count):
            if memory_per_gpu_gib(model, tokens, k) <= usable:
                return True
    return False


def _find_cycle(wf: WorkflowSpec) -> list[str]:
    """A dependency cycle as a list of stage ids (first id repeated at the end), or []."""
    parents = {s.id: s.parents for s in wf.stages}
    colour: dict[str, int] = {}  # 1 = on the DFS stack, 2 = done
    for root in parents:
        if root in colour:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = [root]
        colour[root] = 1
        while stack:
            node, i = stack[-1]
            if i < len(parents[node]):
                stack[-1] = (node, i + 1)
                nxt = parents[node][i]
                if colour.get(nxt) == 1:
                    start = path.index(nxt)
                    return [*path[start:], nxt]
                if nxt not in colour:
                    colour[nxt] = 1
                    stack.append((nxt, 0))
                    path.append(nxt)
            else:
                colour[node] = 2
                stack.pop()
                path.pop()
    return []
