"""What a workload template is: a name and a seeded builder of one workflow's stages.

A template describes one published LLM application as a DAG of stages. ``build`` draws
one instance from the workflow's own generator (so an instance depends only on the seed
and its index, never on how many workflows came before it) and returns its stages; the
generator adds the workflow id and arrival time. `StageList` is the small helper every
template uses to add stages in dependency order with checked parents and prefixes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from airflow_fate.domain.workload import PrefixSpec, StageSpec
from airflow_fate.workloads.sampling import text_mb

BuildFn = Callable[[np.random.Generator], list[StageSpec]]


@dataclass(frozen=True)
class Template:
    """A named workflow shape.

    Attributes:
        name: the ``template`` field of generated workflows and the id prefix.
        build: draws one instance's stages from a generator; deterministic for its state.
        models: every catalog model the template may use (checked against the catalog
            before anything is generated).
    """

    name: str
    build: BuildFn
    models: frozenset[str]


class StageList:
    """One workflow's stages, added parents-first.

    Checks what the workload format would reject later (duplicate ids, unknown parents,
    a prefix longer than the input) at the line of the template that caused it.
    """

    def __init__(self) -> None:
        self._stages: list[StageSpec] = []
        self._ids: set[str] = set()

    def add(
        self,
        stage_id: str,
        model: str,
        input_tokens: int,
        output_tokens: int,
        *,
        parents: Iterable[str] = (),
        prefix: PrefixSpec | None = None,
        output_mb: float | None = None,
    ) -> str:
        """Append a stage and return its id (for use as a later stage's parent).

        Args:
            stage_id: unique within the workflow.
            model: a catalog model name.
            input_tokens: every token the stage reads, the prefix included.
            output_tokens: tokens it generates (0 for encoders).
            parents: ids of stages added earlier.
            prefix: the shared prompt prefix at the start of its input, if any.
            output_mb: what its children receive; text of ``output_tokens`` when omitted.
        """
        if stage_id in self._ids:
            raise ValueError(f"duplicate stage id {stage_id!r}")
        parent_ids = list(parents)
        unknown = [p for p in parent_ids if p not in self._ids]
        if unknown:
            raise ValueError(f"stage {stage_id!r} has unknown parents {unknown}")
        if prefix is not None and prefix.tokens > input_tokens:
            raise ValueError(f"stage {stage_id!r}: prefix longer than its input")
        self._stages.append(
            StageSpec(
                id=stage_id,
                model=model,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                output_mb=text_mb(output_tokens) if output_mb is None else output_mb,
                parents=parent_ids,
                prefix=prefix,
            )
        )
        self._ids.add(stage_id)
        return stage_id

    def stages(self) -> list[StageSpec]:
        """The stages added so far, in order."""
        return list(self._stages)
