"""The figures a replay compares, computed the same way for the measured run and a replay.

A stage's *end* is when its task process ended (its GPUs were free again), a workflow's
latency runs from its run's start to its last stage's end, and makespan from the first
start to the last end, over the chosen runs only (runs that merely shared the GPUs are
replayed but not counted). ``wait_s`` sums the seconds stages waited for GPUs after
Airflow had queued them; ``loads`` counts stages that loaded their model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from airflow_fate.replay.report import Figures
from airflow_fate.spine.metrics import percentile


@dataclass(frozen=True, slots=True)
class StageOutcome:
    """One stage of a chosen run, measured or replayed (seconds from the workload's t0)."""

    workflow: str
    arrival_s: float
    end_s: float
    wait_s: float
    load_s: float
    prefix_reused: bool


def figures(stages: Sequence[StageOutcome]) -> Figures:
    """Makespan, latencies and where the time went, over ``stages`` (at least one)."""
    finish: dict[str, float] = {}
    arrival: dict[str, float] = {}
    for s in stages:
        finish[s.workflow] = max(finish.get(s.workflow, 0.0), s.end_s)
        arrival[s.workflow] = s.arrival_s
    latencies = [finish[w] - arrival[w] for w in finish]
    return Figures(
        makespan_s=_r(max(finish.values()) - min(arrival.values())),
        mean_latency_s=_r(sum(latencies) / len(latencies)),
        p95_latency_s=_r(percentile(latencies, 95)),
        stages=len(stages),
        loads=sum(1 for s in stages if s.load_s > 0),
        load_s=_r(sum(s.load_s for s in stages)),
        wait_s=_r(sum(s.wait_s for s in stages)),
        prefix_hits=sum(1 for s in stages if s.prefix_reused),
    )


def _r(x: float) -> float:
    return round(x, 3)
