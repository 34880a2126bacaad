"""FATE's receding-horizon step: schedule the near future, launch only what starts now.

At an epoch where some GPU is free:

1. Window (`window`): the ``window_ready`` most critical ready stages with their scored
   candidates, and the ``window_soon`` most critical stages that become ready when
   running or window stages end, each with its earliest-finishing GPU sets. A load
   also carries its value to its model's whole ready backlog (`backlog`), which the
   window's few stages of that model do not show.
2. Greedy schedule of the window (`serial`): the hint, and the answer when the solver is
   off or finds nothing in its budget.
3. CP-SAT schedule (`schedule`): intervals per GPU, shared model loads as setup,
   evictions, transfers, weighted completion.
4. Launch the ready stages that the schedule puts first on GPUs that are free now
   (`window.starts_now`); everything else stays unplaced and is planned again at the
   next event, with what has happened by then. Stages never wait in a GPU queue, so a
   stage that a later arrival would rather see elsewhere has not been bound yet.
5. Backfill: ready stages outside the window take GPUs the plan leaves idle now, where
   they finish before the plan's first use of those GPUs (`backfill`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.graph import StageInfo
from airflow_fate.domain.plan import StageCost
from airflow_fate.planner.candidates import groups_for
from airflow_fate.planner.fate.backlog import BacklogValue
from airflow_fate.planner.fate.config import FateConfig
from airflow_fate.planner.fate.schedule import add_hint, build_model, solve
from airflow_fate.planner.fate.scoring import Scored
from airflow_fate.planner.fate.serial import serial_schedule
from airflow_fate.planner.fate.window import (
    TICK_S,
    WindowSettings,
    build_window,
    first_use,
    starts_now,
)
from airflow_fate.state.cluster_state import Snapshot


@dataclass(frozen=True)
class WindowDecision:
    """What starts now: ``(stage, GPU set)`` pairs, and whether greedy stood in."""

    launch: tuple[tuple[int, tuple[int, ...]], ...]
    fallback: bool
    status: str
    idle_for: dict[int, float]
    """Per GPU the plan uses, seconds from now until its first planned use."""


def plan_window(
    snap: Snapshot,
    cost: CostModel,
    scored: dict[int, list[Scored]],
    soon: list[int],
    weights: dict[int, float],
    cfg: FateConfig,
    backlog: BacklogValue | None = None,
) -> WindowDecision:
    """Steps 1-4 for the scored ready stages and the chosen soon-ready ones (``backlog``:
    value loads against whole backlogs, `build_window`)."""
    settings = WindowSettings(options=cfg.window_options, future_terms=cfg.window_terms)
    window = build_window(snap, cost, scored, soon, weights, settings, backlog)
    greedy = serial_schedule(window)
    plan, fallback, status = greedy, False, "GREEDY"
    if cfg.use_solver:
        model = build_model(window)
        add_hint(window, model, greedy)
        result = solve(
            window,
            model,
            time_limit_s=cfg.time_limit_s,
            work_limit=cfg.work_limit,
            num_workers=cfg.num_workers,
            random_seed=cfg.random_seed,
        )
        status = result.status
        if result.plan is None:
            fallback = True
        else:
            plan = result.plan
    by_uid = window.index()
    launch = tuple((u, by_uid[u].options[i].gpus) for u, i in starts_now(window, plan))
    idle_for = {g: t * TICK_S for g, (t, _) in first_use(window, plan).items()}
    return WindowDecision(launch, fallback, status, idle_for)


def backfill(
    snap: Snapshot,
    cost: CostModel,
    stages: list[int],
    taken: set[int],
    idle_for: dict[int, float],
    bound: int | None,
    fetch_hold_s: float | None = None,
) -> list[tuple[int, tuple[int, ...], StageCost]]:
    """Ready stages outside the window on GPUs the plan leaves idle now, in order.

    A stage takes the earliest-finishing GPU set among the idle GPUs nothing has taken
    that hold its model or have room for it (a load that evicts would drop what the plan
    did not weigh) and whose next planned use (``idle_for``, none: never) comes after it
    would finish, so the plan's own stages are not delayed. A set whose load would wait
    longer than ``fetch_hold_s`` for a fetch still bringing the model to its node is
    skipped, as FATE's fetch hold drops such options (None: no such rule). Stops when no
    GPU is left.
    """
    free = {g for g in range(len(snap.gpus)) if snap.idle(g) and g not in taken}
    out = []
    for uid in stages:
        if not free:
            break
        stage = snap.graph.stages[uid]
        nodes = {snap.cluster.gpus[g].node for g in free}
        best: tuple[float, tuple[int, ...], StageCost] | None = None
        for group in groups_for(stage, snap, cost, bound, sorted(nodes)):
            if not free.issuperset(group):
                continue
            est = cost.estimate(stage, group, snap)
            if est is None or (est.load > 0 and _evicts(snap, stage, group)):
                continue
            if (
                est.load > 0
                and fetch_hold_s is not None
                and cost.fetch_wait(stage.model, group, snap) > fetch_hold_s
            ):
                continue
            if any(est.total > idle_for.get(g, math.inf) for g in group):
                continue
            if best is None or (est.total, group) < best[:2]:
                best = (est.total, group, est)
        if best is not None:
            out.append((uid, best[1], best[2]))
            free.difference_update(best[1])
    return out


def _evicts(snap: Snapshot, stage: StageInfo, group: tuple[int, ...]) -> bool:
    return any(snap.evicted_by(g, stage.model, group, stage.tokens) for g in group)
