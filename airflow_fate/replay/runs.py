"""`RunSource` -> `PastRun`: the stages a finished DAG run executed, as the replay uses them.

Rules, each chosen so the replay describes what the GPUs really did:

- a stage is a task with stage metadata in the run's serialized DAG and a placement on
  GPUs; a mapped task contributes one stage per instance (``task[i]``);
- its last try is replayed; earlier tries are counted, not replayed;
- its parents are the nearest stages upstream that ran, looking through CPU tasks (as the
  executor does) and through stages that never ran (a skipped branch);
- a run is replayable only when every such try succeeded and reported measured times;
  otherwise `NotReplayableError` says which task and why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.models import ModelCatalog
from airflow_fate.executor.layout import RunLayout, build_layout
from airflow_fate.executor.store import PlacementRow
from airflow_fate.replay.records import Measured, PastRun, RunSource, StageRun


class NotReplayableError(ValueError):
    """A run that cannot be replayed; the message names the run, the task and why."""


def past_run(source: RunSource, catalog: ModelCatalog, cluster: Cluster) -> PastRun:
    """The replayable view of ``source``.

    Raises:
        NotReplayableError: the run never started, ran no stage, or a stage's last try did
            not succeed, has no measured times or has no stage metadata.
    """
    name = f"{source.dag_id}/{source.run_id}"
    if source.start is None:
        raise NotReplayableError(f"run {name} has not started")
    layout = build_layout(source.tasks, catalog, cluster)
    last, earlier = _last_tries(source.rows)
    if not last:
        raise NotReplayableError(f"run {name} ran no stage on GPUs")
    instances: dict[str, list[str]] = {}
    for (task_id, index), row in sorted(last.items(), key=lambda kv: kv[1].start):
        problem = layout.rejected.get(task_id) or _row_problem(row)
        if task_id not in layout.stages and problem is None:
            problem = "the run's DAG gives it no stage metadata"
        if problem is not None:
            raise NotReplayableError(f"run {name}: task {task_id}: {problem}")
        instances.setdefault(task_id, []).append(_stage_id(task_id, index))
    stages = []
    for (task_id, index), row in sorted(last.items(), key=lambda kv: kv[1].start):
        queued = source.queued.get((task_id, index, row.key.try_number))
        stages.append(
            StageRun(
                stage_id=_stage_id(task_id, index),
                metadata=layout.stages[task_id],
                parents=tuple(_ran_parents(task_id, layout, instances)),
                row=row,
                queued=queued,
                measured=_measured(row.measured),
            )
        )
    return PastRun(source.dag_id, source.run_id, source.start, tuple(stages), earlier)


def _last_tries(
    rows: Sequence[PlacementRow],
) -> tuple[dict[tuple[str, int], PlacementRow], int]:
    """The last GPU try of each (task, map index), and how many earlier GPU tries there were."""
    last: dict[tuple[str, int], PlacementRow] = {}
    gpu_rows = [r for r in rows if r.gpus]
    for row in gpu_rows:
        key = (row.key.task_id, row.key.map_index)
        if key not in last or row.key.try_number > last[key].key.try_number:
            last[key] = row
    return last, len(gpu_rows) - len(last)


def _stage_id(task_id: str, map_index: int) -> str:
    return task_id if map_index < 0 else f"{task_id}[{map_index}]"


def _row_problem(row: PlacementRow) -> str | None:
    if row.end is None or row.run_s is None:
        return f"try {row.key.try_number} has not ended"
    if row.state != "success":
        return f"try {row.key.try_number} ended {row.state}"
    if _measured_or_none(row.measured) is None:
        return f"try {row.key.try_number} reported no measured times"
    return None


def _ran_parents(task_id: str, layout: RunLayout, instances: Mapping[str, list[str]]) -> list[str]:
    """Stage ids of the nearest upstream stages that ran (through those that did not)."""
    found: list[str] = []
    todo = list(layout.parents.get(task_id, []))
    seen: set[str] = set()
    while todo:
        parent = todo.pop(0)
        if parent in seen:
            continue
        seen.add(parent)
        if parent in instances:
            found.extend(i for i in instances[parent] if i not in found)
        else:
            todo.extend(layout.parents.get(parent, []))
    return found


def _measured_or_none(doc: Mapping[str, Any] | None) -> Measured | None:
    if not doc:
        return None
    times = [doc.get(k) for k in ("load_s", "prefill_s", "decode_s")]
    if not all(isinstance(t, int | float) and t >= 0 for t in times):
        return None
    load, prefill, decode = (float(t) for t in times)  # type: ignore[arg-type]
    return Measured(
        load_s=load,
        prefill_s=prefill,
        decode_s=decode,
        model_warm=doc.get("model_warm") is True,
        prefix_warm=doc.get("prefix_warm") is True,
    )


def _measured(doc: Mapping[str, Any] | None) -> Measured:
    found = _measured_or_none(doc)
    assert found is not None  # _row_problem checked it
    return found
