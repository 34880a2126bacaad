"""The skeleton shared by list-style policies: order the frontier, choose, reserve, repeat.

Each choice is made on a snapshot that already holds the earlier choices of the same
epoch (`Snapshot.reserve`), so queues and warm models are seen consistently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.graph import StageInfo
from airflow_fate.domain.plan import Assignment, DecisionRecord, Plan
from airflow_fate.state.cluster_state import Snapshot

Chooser = Callable[[StageInfo, Snapshot], tuple[int, ...] | None]
"""Picks a GPU set for a stage on a snapshot, or None to leave it for a later epoch."""


def fifo_order(snap: Snapshot) -> list[int]:
    """Frontier in arrival order of workflows, then stage order within them."""
    stages = snap.graph.stages
    return sorted(snap.frontier, key=lambda u: (snap.arrived.get(stages[u].workflow, 0.0), u))


def place_in_order(snap: Snapshot, cost: CostModel, order: Iterable[int], choose: Chooser) -> Plan:
    """Run ``choose`` over ``order`` and reserve each choice before the next."""
    out: list[Assignment] = []
    stages = snap.graph.stages
    for uid in order:
        stage = stages[uid]
        gpus = choose(stage, snap)
        if gpus is None:
            continue
        est = cost.estimate(stage, gpus, snap)
        if est is None:
            raise ValueError(f"policy chose GPUs {gpus} that do not fit stage {stage.stage_id}")
        out.append(Assignment(uid, gpus, DecisionRecord(cost=est, score=est.total)))
        snap = snap.reserve(uid, gpus, est.run)
    return Plan(assignments=tuple(out))


def earliest_finish(
    stage: StageInfo, snap: Snapshot, cost: CostModel, groups: Iterable[tuple[int, ...]]
) -> tuple[int, ...] | None:
    """The group with the smallest estimated finish time (ties: first in ``groups``).

    Branch and bound: a group's finish is at least its wait plus its warm compute
    (`CostModel.finish_floor`), so groups are visited by that floor and the scan stops
    once the floor exceeds the best finish found. Same answer as a full scan.
    """
    order = sorted(
        (cost.finish_floor(stage, group, snap), pos, group) for pos, group in enumerate(groups)
    )
    best: tuple[int, ...] | None = None
    best_key = (float("inf"), 0)
    for floor, pos, group in order:
        if floor > best_key[0]:
            break
        est = cost.estimate(stage, group, snap)
        if est is not None and (est.total, pos) < best_key:
            best, best_key = group, (est.total, pos)
    return best
