"""One replay per policy of the same past runs, set against what was measured.

Every policy plans with the cost model the executor planned with (the profile of the
cluster and models files) and its stages run for what the calibrated model says, plus
Airflow's own time as measured (`replay.timing`): the same `Simulation`, `Dispatcher`,
`ClusterState` and policies as ``simulate``, with no noise. The replay of the policy that
placed the measured run is the cost model's error on that run: the same decisions,
re-simulated, against the clock.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.models import ModelCatalog
from airflow_fate.errors import UnrunStagesError
from airflow_fate.planner.policy import Policy
from airflow_fate.replay.calibration import calibrate
from airflow_fate.replay.figures import StageOutcome, figures
from airflow_fate.replay.records import PastRun
from airflow_fate.replay.report import (
    Delta,
    Figures,
    ModelError,
    PolicyRow,
    ReplayedRun,
    ReplayReport,
)
from airflow_fate.replay.timing import MeasuredTiming
from airflow_fate.replay.workload import ReplayWorkload, build_workload
from airflow_fate.sim.simulator import simulate
from airflow_fate.spine.metrics import RunResult
from airflow_fate.state.hosting import Hosting


def compare(
    runs: Sequence[PastRun],
    chosen: Collection[str],
    cluster: Cluster,
    catalog: ModelCatalog,
    policies: Sequence[Policy],
    *,
    hosting: Hosting | None = None,
    launcher: str = "local",
    visible: Callable[[str], bool] = lambda dag_id: True,
    notes: Sequence[str] = (),
) -> ReplayReport:
    """Replay ``runs`` under each of ``policies``; figures over the ``chosen`` run keys.

    ``runs`` holds the chosen runs and those that shared their GPUs; ``visible`` says
    which DAGs' ids the report may name.
    """
    built = build_workload(runs)
    calibration = calibrate(runs, cluster)
    plan_cost = CostModel(cluster, catalog)
    actual_cost = calibration.cost_model(cluster, catalog)
    picked = [r for r in runs if r.key in chosen]
    measured = figures(_measured(picked, built))
    ran = sorted(set().union(*(r.policies for r in picked)))
    rows = []
    for policy in policies:
        timing = MeasuredTiming(actual_cost, built.times)
        try:
            result = simulate(
                cluster,
                catalog,
                built.workload,
                policy,
                noise=0.0,
                cost=plan_cost,
                hosting=hosting,
                timing=timing,
            )
        except UnrunStagesError as exc:
            rows.append(PolicyRow(policy=policy.name, ran=policy.name in ran, error=str(exc)))
            continue
        got = figures(_replayed(result, built, timing, set(chosen)))
        rows.append(
            PolicyRow(
                policy=policy.name,
                ran=policy.name in ran,
                figures=got,
                delta=delta(got, measured),
            )
        )
    return ReplayReport(
        dag_ids=sorted({r.dag_id for r in picked}),
        runs=[_run_out(r, built, r.key in chosen, visible) for r in runs],
        ran=ran,
        launcher=launcher,
        measured=measured,
        rows=rows,
        model_error=model_error(rows, measured, ran),
        calibration=list(calibration.factors),
        airflow_s=round(
            sum(
                t.release_s + t.overhead_s
                for (wf, _), t in built.times.items()
                if wf in {r.key for r in picked}
            ),
            3,
        ),
        notes=list(notes),
    )


def delta(got: Figures, measured: Figures) -> Delta:
    """``got`` minus ``measured``, field by field, and the makespan in percent."""
    return Delta(
        makespan_s=round(got.makespan_s - measured.makespan_s, 3),
        makespan_pct=_pct(got.makespan_s, measured.makespan_s),
        mean_latency_s=round(got.mean_latency_s - measured.mean_latency_s, 3),
        p95_latency_s=round(got.p95_latency_s - measured.p95_latency_s, 3),
        loads=got.loads - measured.loads,
        load_s=round(got.load_s - measured.load_s, 3),
        wait_s=round(got.wait_s - measured.wait_s, 3),
        prefix_hits=got.prefix_hits - measured.prefix_hits,
    )


def model_error(
    rows: Sequence[PolicyRow], measured: Figures, ran: Sequence[str]
) -> ModelError | None:
    """The replay of the one policy that ran against the run (None if not exactly one)."""
    if len(ran) != 1:
        return None
    row = next((r for r in rows if r.policy == ran[0] and r.figures is not None), None)
    if row is None or row.figures is None:
        return None
    f = row.figures
    return ModelError(
        policy=row.policy,
        makespan_pct=_pct(f.makespan_s, measured.makespan_s),
        mean_latency_pct=_pct(f.mean_latency_s, measured.mean_latency_s),
        p95_latency_pct=_pct(f.p95_latency_s, measured.p95_latency_s),
    )


def _pct(got: float, measured: float) -> float:
    return round((got - measured) / measured * 100.0, 2) if measured > 0 else 0.0


def _measured(runs: Sequence[PastRun], built: ReplayWorkload) -> list[StageOutcome]:
    out = []
    for run in runs:
        arrival = (run.start - built.t0).total_seconds()
        for s in run.stages:
            out.append(
                StageOutcome(
                    workflow=run.key,
                    arrival_s=arrival,
                    end_s=(s.exited - built.t0).total_seconds(),
                    wait_s=built.times[(run.key, s.stage_id)].wait_s,
                    load_s=s.measured.load_s,
                    prefix_reused=s.measured.prefix_warm,
                )
            )
    return out


def _replayed(
    result: RunResult, built: ReplayWorkload, timing: MeasuredTiming, chosen: set[str]
) -> list[StageOutcome]:
    arrival = {w.id: w.arrival_s for w in result.workflows}
    out = []
    for p in result.placements:
        if p.workflow not in chosen:
            continue
        key = (p.workflow, p.stage)
        out.append(
            StageOutcome(
                workflow=p.workflow,
                arrival_s=arrival[p.workflow],
                end_s=p.end_s,
                wait_s=max(0.0, p.breakdown.wait - built.times[key].release_s),
                load_s=p.breakdown.load,
                prefix_reused=key in timing.prefix_reused,
            )
        )
    return out


def _run_out(
    run: PastRun, built: ReplayWorkload, chosen: bool, visible: Callable[[str], bool]
) -> ReplayedRun:
    shown = visible(run.dag_id)
    return ReplayedRun(
        dag_id=run.dag_id if shown else None,
        run_id=run.run_id if shown else None,
        chosen=chosen,
        arrival_s=round((run.start - built.t0).total_seconds(), 3),
        stages=len(run.stages),
    )
