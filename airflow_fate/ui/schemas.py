"""The JSON the monitor's API returns (pydantic: the API boundary), built from store rows.

The API and the pages share these models, so what a page shows is exactly what the API
returns. Times are UTC; durations are seconds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from airflow_fate.executor.store import PlacementRow

PREDICTED_RUN_TERMS = ("load", "input", "prefill", "decode")
"""The predicted components that occupy the GPUs (``wait`` happens before launch)."""


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class Placement(_Out):
    """One launched task-instance try: where it ran, predicted and measured times."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    policy: str
    launcher: str
    node: str
    gpus: list[int]
    model: str
    state: str
    start: datetime
    end: datetime | None
    run_s: float | None
    """Seconds from launch until the executor saw the task process end."""
    predicted: dict[str, float]
    predicted_run_s: float | None
    """Predicted seconds on the GPUs (load + input + prefill + decode); None for CPU tasks."""
    measured: dict[str, Any] | None
    measured_stage_s: float | None
    """Seconds the device worker measured for the stage (``measured.total_s``)."""
    model_warm: bool | None
    prefix_warm: bool | None
    failure: str | None
    """Why the stage failed on its device (``[reason] message``), when it said."""
    score: float | None
    runner_up: list[int] | None
    runner_up_score: float | None
    runner_up_node: str | None

    @property
    def on_gpu(self) -> bool:
        return bool(self.gpus)

    @property
    def open(self) -> bool:
        return self.end is None


def placement(row: PlacementRow) -> Placement:
    """The API view of a stored placement row."""
    measured = row.measured or None
    predicted = {k: float(v) for k, v in row.predicted.items()}
    run = sum(predicted.get(k, 0.0) for k in PREDICTED_RUN_TERMS) if predicted else None
    return Placement(
        dag_id=row.key.dag_id,
        run_id=row.key.run_id,
        task_id=row.key.task_id,
        map_index=row.key.map_index,
        try_number=row.key.try_number,
        policy=row.policy,
        launcher=row.launcher,
        node=row.node,
        gpus=list(row.gpus),
        model=row.model,
        state=row.state,
        start=row.start,
        end=row.end,
        run_s=row.run_s,
        predicted=predicted,
        predicted_run_s=run,
        measured=measured,
        measured_stage_s=_float(measured, "total_s"),
        model_warm=_bool(measured, "model_warm"),
        prefix_warm=_bool(measured, "prefix_warm"),
        failure=_failure(measured),
        score=row.score,
        runner_up=list(row.runner_up) if row.runner_up is not None else None,
        runner_up_score=row.runner_up_score,
        runner_up_node=row.runner_up_node,
    )


class RunPlacements(_Out):
    """Every placement of one DAG run, in start order."""

    dag_id: str
    run_id: str
    placements: list[Placement]


class Resident(_Out):
    """A model a GPU holds (``tier`` ``gpu``) or a node's host cache holds (``host``)."""

    model: str
    tier: str
    shard_group: list[int]
    last_used: datetime
    colour: str


class PrefixEntry(_Out):
    """A prefix-KV entry a GPU holds; ``lru_rank`` 0 is evicted first."""

    model: str
    prefix_id: str
    gib: float
    lru_rank: int


class Running(_Out):
    """The try a GPU runs now (an open placement). Names are None when the caller may
    not read that DAG: the GPU is shown busy without saying with what."""

    dag_id: str | None
    run_id: str | None
    task_id: str | None
    map_index: int | None
    try_number: int | None
    model: str
    start: datetime
    colour: str


class Gpu(_Out):
    index: int
    resident: list[Resident]
    prefix_kv: list[PrefixEntry]
    running: Running | None
    colour: str | None
    """The colour of the model it runs, else of its most recently used resident model."""


class Node(_Out):
    name: str
    gpu_type: str | None
    memory_gib: float | None
    gpus: list[Gpu]
    host_cache: list[Resident]


class ClusterMap(_Out):
    """The cluster's GPUs with what they hold and run, as the executor last recorded."""

    nodes: list[Node]
    models: dict[str, str]
    """Model -> colour, for a legend."""
    source: str
    """``cluster`` when the node and GPU list comes from ``[fate] cluster``, ``store`` when
    it is inferred from the stored rows (GPUs never used are then missing)."""
    generated: datetime


class CostLine(_Out):
    """One component of the stage's time: predicted, and measured where measured."""

    term: str
    predicted_s: float
    measured_s: float | None
    runner_up_s: float | None
    """The runner-up's predicted seconds for this component (None when not recorded)."""


class FutureTerm(_Out):
    """A FATE future-state term in seconds before its weight; ``effect`` says how it moved
    the score (credits lower it, debits raise it; lower scores win)."""

    term: str
    seconds: float
    effect: str


class Decision(_Out):
    """Why this try went to these GPUs: cost breakdown, future terms, the runner-up."""

    placement: Placement
    breakdown: list[CostLine]
    predicted_total_s: float
    measured_total_s: float | None
    future_terms: list[FutureTerm]
    score: float | None
    runner_up: list[int] | None
    runner_up_node: str | None
    runner_up_score: float | None
    runner_up_total_s: float | None
    """The runner-up's predicted seconds in all (None when its breakdown is not recorded)."""
    runner_up_terms: dict[str, float] | None
    margin: float | None
    """``runner_up_score - score``: how much worse the next best candidate scored."""
    reasons: list[str]
    """Plain sentences for the page, derived only from the fields above."""
    tries: list[int]
    """Every stored try number of this task instance."""


def _float(doc: dict[str, Any] | None, key: str) -> float | None:
    value = doc.get(key) if doc else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _failure(doc: dict[str, Any] | None) -> str | None:
    reason = doc.get("failure") if doc else None
    if not isinstance(reason, str):
        return None
    message = doc.get("message") if doc else None
    return f"[{reason}] {message}" if isinstance(message, str) else f"[{reason}]"


def _bool(doc: dict[str, Any] | None, key: str) -> bool | None:
    value = doc.get(key) if doc else None
    return value if isinstance(value, bool) else None
