"""Run metrics and the JSON result of ``simulate`` (and of the live engine).

makespan = last finish - first arrival; latency = workflow finish - arrival; P95 over
workflows (linear interpolation between order statistics, numpy's default). A placement's
``wait`` is the time from the stage becoming ready (all parents done, workflow arrived)
to its start; the other components are the actual seconds it ran.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel

from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.graph import WorkloadGraph
from airflow_fate.domain.plan import DecisionRecord, StageCost
from airflow_fate.state.hosting import HostingMode


@dataclass
class Counters:
    model_loads: int = 0
    load_s: float = 0.0
    prefix_hits: int = 0
    bytes_moved: float = 0.0
    evictions: int = 0
    pod_starts: int = 0


@dataclass(frozen=True)
class PlacementRecord:
    stage: int
    gpus: tuple[int, ...]
    start_s: float
    end_s: float
    actual: StageCost
    record: DecisionRecord | None


class PlannerStats(BaseModel):
    decisions: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    fallbacks: int


class CountersOut(BaseModel):
    model_loads: int
    load_s: float
    prefix_hits: int
    bytes_moved_gb: float
    evictions: int
    pod_starts: int = 0


class WorkflowOut(BaseModel):
    id: str
    arrival_s: float
    finish_s: float
    latency_s: float


class Breakdown(BaseModel):
    wait: float
    load: float
    input: float
    prefill: float
    decode: float


class PlacementOut(BaseModel):
    workflow: str
    stage: str
    node: str
    gpus: list[int]
    start_s: float
    end_s: float
    breakdown: Breakdown
    predicted: Breakdown | None = None
    future_terms: dict[str, float] | None = None
    runner_up: dict[str, object] | None = None


class RunResult(BaseModel):
    """The ``simulate`` JSON document."""

    policy: str
    seed: int
    launcher: HostingMode = "local"
    makespan_s: float
    mean_latency_s: float
    p95_latency_s: float
    lower_bound_s: float
    planner: PlannerStats
    counters: CountersOut
    workflows: list[WorkflowOut]
    placements: list[PlacementOut]

    def without_timings(self) -> RunResult:
        """A copy with wall-clock planner timings removed (null), for byte-stable output."""
        stats = self.planner.model_copy(update={"p50_ms": None, "p99_ms": None, "max_ms": None})
        return self.model_copy(update={"planner": stats})


def _r(x: float) -> float:
    """Round to microseconds: keeps JSON readable and stable across platforms."""
    return round(x, 6)


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else 0.0


def summarise(
    *,
    policy: str,
    seed: int,
    graph: WorkloadGraph,
    cluster: Cluster,
    placements: Sequence[PlacementRecord],
    plan_ms: Sequence[float],
    fallbacks: int,
    counters: Counters,
    lower_bound_s: float,
    launcher: HostingMode = "local",
) -> RunResult:
    """Turn a finished run's records into a `RunResult`."""
    end = {p.stage: p.end_s for p in placements}
    first = min(wf.arrival_s for wf in graph.workflows)
    workflows = []
    for wf in graph.workflows:
        finish = max(end[u] for u in wf.stages)
        workflows.append(
            WorkflowOut(
                id=wf.id,
                arrival_s=wf.arrival_s,
                finish_s=_r(finish),
                latency_s=_r(finish - wf.arrival_s),
            )
        )
    latencies = [w.latency_s for w in workflows]
    out_placements = []
    for p in sorted(placements, key=lambda p: (p.start_s, p.stage)):
        stage = graph.stages[p.stage]
        ready = max(
            (end[q] for q in stage.parents), default=graph.workflows[stage.workflow].arrival_s
        )
        ref = cluster.gpus[p.gpus[0]]
        a = p.actual
        out_placements.append(
            PlacementOut(
                workflow=stage.workflow_id,
                stage=stage.stage_id,
                node=cluster.nodes[ref.node].name,
                gpus=[cluster.gpus[g].local for g in p.gpus],
                start_s=_r(p.start_s),
                end_s=_r(p.end_s),
                breakdown=Breakdown(
                    wait=_r(p.start_s - ready),
                    load=_r(a.load),
                    input=_r(a.input),
                    prefill=_r(a.prefill),
                    decode=_r(a.decode),
                ),
                **_decision_fields(p.record, cluster),
            )
        )
    return RunResult(
        policy=policy,
        seed=seed,
        launcher=launcher,
        makespan_s=_r(max(end.values()) - first),
        mean_latency_s=_r(sum(latencies) / len(latencies)),
        p95_latency_s=_r(percentile(latencies, 95)),
        lower_bound_s=_r(lower_bound_s),
        planner=PlannerStats(
            decisions=len(plan_ms),
            p50_ms=_r(percentile(plan_ms, 50)),
            p99_ms=_r(percentile(plan_ms, 99)),
            max_ms=_r(max(plan_ms, default=0.0)),
            fallbacks=fallbacks,
        ),
        counters=CountersOut(
            model_loads=counters.model_loads,
            load_s=_r(counters.load_s),
            prefix_hits=counters.prefix_hits,
            bytes_moved_gb=_r(counters.bytes_moved / 1e9),
            evictions=counters.evictions,
            pod_starts=counters.pod_starts,
        ),
        workflows=workflows,
        placements=out_placements,
    )


def _decision_fields(record: DecisionRecord | None, cluster: Cluster) -> dict[str, object]:
    if record is None:
        return {}
    out: dict[str, object] = {"predicted": _predicted(record.cost)}
    if record.future_terms:
        out["future_terms"] = {k: _r(v) for k, v in record.future_terms}
    if record.runner_up is not None:
        ref = cluster.gpus[record.runner_up[0]]
        runner_up: dict[str, object] = {
            "node": cluster.nodes[ref.node].name,
            "gpus": [cluster.gpus[g].local for g in record.runner_up],
            "score": _r(record.runner_up_score or 0.0),
        }
        if record.runner_up_cost is not None:
            runner_up["predicted"] = _predicted(record.runner_up_cost).model_dump()
        out["runner_up"] = runner_up
    return out


def _predicted(c: StageCost) -> Breakdown:
    """A predicted `StageCost` as rounded JSON seconds."""
    return Breakdown(
        wait=_r(c.wait),
        load=_r(c.load),
        input=_r(c.input),
        prefill=_r(c.prefill),
        decode=_r(c.decode),
    )
