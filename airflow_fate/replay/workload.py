"""`PastRun`s -> the workload they executed, plus what Airflow itself added to each stage.

Every run becomes a workflow (id ``dag_id/run_id``, arriving when Airflow started the
run, seconds after the first replayed run started) whose stages carry the metadata the
planner planned with. Two measured times per stage are kept apart from the workload,
because no policy changes them:

- ``release_s``: from the stage becoming ready (its stage parents' task processes ended,
  or the run started) until Airflow queued it: CPU tasks in between and the scheduler's
  own loop. A stage queued before it was ready has 0.
- ``overhead_s``: the seconds its task process held the GPUs beyond the device's load,
  prefill and decode: process start, Airflow's calls, process exit.

The rest of a stage's time (waiting for GPUs, loading, computing) is what a replay
re-simulates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from airflow_fate.domain.workload import WorkflowSpec, Workload
from airflow_fate.replay.records import PastRun, StageRun

StageKey = tuple[str, str]
"""A replayed stage: ``(workflow id, stage id)``."""


@dataclass(frozen=True, slots=True)
class StageTimes:
    """A stage's Airflow-side seconds (see the module docstring) and its measured wait."""

    ready_s: float
    release_s: float
    overhead_s: float
    wait_s: float
    """Seconds from its release until its launch (waiting for GPUs, and planning)."""


@dataclass(frozen=True)
class ReplayWorkload:
    """The workload of some past runs and the times that stay as measured.

    Attributes:
        workload: one workflow per run, in the order given.
        times: per stage, seconds relative to ``t0``.
        t0: the earliest run start (time 0 of the workload).
    """

    workload: Workload
    times: dict[StageKey, StageTimes]
    t0: datetime


def build_workload(runs: Sequence[PastRun]) -> ReplayWorkload:
    """The workload of ``runs`` (at least one) and their stages' Airflow-side times."""
    t0 = min(r.start for r in runs)
    workflows = []
    times: dict[StageKey, StageTimes] = {}
    for run in runs:
        workflows.append(
            WorkflowSpec(
                id=run.key,
                template=run.dag_id,
                arrival_s=_s(run.start, t0),
                stages=[s.metadata.stage_spec(s.stage_id, list(s.parents)) for s in run.stages],
            )
        )
        exits = {s.stage_id: s.exited for s in run.stages}
        for s in run.stages:
            times[(run.key, s.stage_id)] = _times(s, run.start, exits, t0)
    return ReplayWorkload(Workload(workflows=workflows), times, t0)


def _times(s: StageRun, start: datetime, exits: dict[str, datetime], t0: datetime) -> StageTimes:
    ready = max([start, *(exits[p] for p in s.parents)])
    queued = s.queued if s.queued is not None else s.launched  # unknown: no wait counted
    released = max(ready, min(queued, s.launched))
    return StageTimes(
        ready_s=_s(ready, t0),
        release_s=_s(released, ready),
        overhead_s=max(0.0, (s.row.run_s or 0.0) - s.measured.device_s),
        wait_s=_s(s.launched, released),
    )


def _s(t: datetime, since: datetime) -> float:
    """Seconds from ``since`` to ``t``, never negative."""
    return max(0.0, (t - since).total_seconds())
