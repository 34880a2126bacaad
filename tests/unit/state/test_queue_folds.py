"""QueueFolds: what a GPU holds as its queue starts, kept between snapshots, equals a
fresh fold after any sequence of reservations, starts and finishes, and reuses the folds
of the queue head it shares with the last state instead of redoing them."""

from __future__ import annotations

import dataclasses
import random

from airflow_fate.domain.graph import WorkloadGraph
from airflow_fate.state.cluster_state import (
    ClusterState,
    FoldStep,
    PendingStage,
    QueueFolds,
    Resident,
    Snapshot,
    StageAssigned,
    StageFinished,
    StageStarted,
    WorkflowArrived,
)
from tests.conftest import make_catalog, make_cluster, make_workload, stage

# 30 GiB models on 72 GiB usable GPUs: a third model evicts, so the fold's order matters.
MODELS = {
    f"m{i}": {
        "weights_gib": 30.0,
        "kv_bytes_per_token": 0,
        "prefill_tokens_per_s": 1000,
        "decode_tokens_per_s": 100,
    }
    for i in range(4)
}
GROUPS = [(0,), (1,), (0, 1), (2,)]


def build(n_stages: int, seed: int, *, one_model: bool = False) -> ClusterState:
    rng = random.Random(seed)
    models = ["m0"] * n_stages if one_model else [f"m{rng.randrange(4)}" for _ in range(n_stages)]
    stages = [stage(f"s{i}", m) for i, m in enumerate(models)]
    cluster, catalog = make_cluster([("n0", "big", 4)]), make_catalog(**MODELS)
    graph = WorkloadGraph.from_workload(make_workload(stages, copies=1), catalog)
    state = ClusterState(cluster, catalog, graph)
    state.apply(WorkflowArrived(0, 0.0))
    return state


def fresh_fold(snap: Snapshot, g: int, before: int | None) -> Resident:
    """What GPU ``g`` holds when ``before`` starts (None: after its queue), step by step."""
    step, resident = snap._fold_step(g), snap.gpus[g].resident
    for p in snap.gpus[g].pending:
        if p.stage == before:
            break
        resident = step(resident, p)
    return resident


def assert_fresh(snap: Snapshot) -> None:
    """Every GPU's memoised folds equal ones folded from scratch."""
    for g, st in enumerate(snap.gpus):
        for before in (None, *(p.stage for p in st.pending)):
            assert snap.resident_after_queue(g, before) == fresh_fold(snap, g, before), (g, before)


def test_memoised_folds_equal_fresh_ones_through_a_random_run() -> None:
    for seed in range(5):
        rng = random.Random(100 + seed)
        state = build(40, seed)
        waiting = list(range(40))
        queued: list[int] = []
        running: list[int] = []
        t = 0.0
        while waiting or queued or running:
            t += 1.0
            action = rng.random()
            if waiting and action < 0.5:
                uid = waiting.pop(rng.randrange(len(waiting)))
                state.apply(StageAssigned(uid, rng.choice(GROUPS), t, 1.0))
                queued.append(uid)
            elif running and action < 0.7:
                uid = running.pop(0)
                state.apply(StageFinished(uid, t, 1.0))
            else:
                startable = [u for u in queued if state.startable(u)]
                if startable:
                    uid = rng.choice(startable)
                    state.apply(StageStarted(uid, t))
                    queued.remove(uid)
                    running.append(uid)
                elif running:
                    state.apply(StageFinished(running.pop(0), t, 1.0))
            snap = state.snapshot()
            assert_fresh(snap)
            # A planner's trial reservations share the memo with the state's snapshots;
            # most are never applied.
            trial = snap
            for uid in waiting[:2]:
                trial = trial.reserve(uid, rng.choice(GROUPS), 1.0)
                assert_fresh(trial)


def test_a_state_reuses_the_folds_of_the_queue_head_it_shares_with_the_last() -> None:
    state = build(6, seed=1)
    for uid in range(5):
        state.apply(StageAssigned(uid, (0,), 0.0, 1.0))
    steps: list[int] = []

    def counting(step: FoldStep) -> FoldStep:
        def counted(resident: Resident, p: PendingStage) -> Resident:
            steps.append(1)
            return step(resident, p)

        return counted

    folds = QueueFolds()
    snap = dataclasses.replace(state.snapshot(), queue_folds=folds)

    def steps_for(st_snap: Snapshot) -> int:
        steps.clear()
        parts = folds.partials(0, st_snap.gpus[0], lambda g: counting(snap._fold_step(g)))
        assert parts[-1] == fresh_fold(st_snap, 0, None)
        return len(steps)

    assert steps_for(snap) == 5, "the first fold walks the whole queue"
    assert steps_for(snap) == 0, "the same GPU state is not folded again"
    assert steps_for(snap.reserve(5, (0,), 1.0)) == 1, "a reservation folds its stage only"
    assert steps_for(snap) == 0, "a trial reservation dropped again costs nothing"
    state.apply(StageAssigned(5, (0,), 0.0, 1.0))
    assert steps_for(state.snapshot()) == 1
    state.apply(StageStarted(0, 0.0))
    assert steps_for(state.snapshot()) == 0, "the started head loaded as folded"


def test_a_warm_start_that_leaves_the_resident_models_as_they_were_is_not_refolded() -> None:
    state = build(4, seed=0, one_model=True)
    for uid in range(4):
        state.apply(StageAssigned(uid, (0,), 0.0, 1.0))
    folds = QueueFolds()
    steps: list[int] = []

    def step_of(g: int) -> FoldStep:
        step = state.snapshot()._fold_step(g)

        def counted(resident: Resident, p: PendingStage) -> Resident:
            steps.append(1)
            return step(resident, p)

        return counted

    folds.partials(0, state.gpu(0), step_of)
    state.apply(StageStarted(0, 0.0))  # cold: loads m0
    state.apply(StageFinished(0, 1.0, 1.0))
    folds.partials(0, state.gpu(0), step_of)
    before = state.gpu(0).resident
    state.apply(StageStarted(1, 1.0))  # warm: m0 stays where it was
    assert state.gpu(0).resident == before
    steps.clear()
    parts = folds.partials(0, state.gpu(0), step_of)
    assert steps == [], "the queue behind the started head is not folded again"
    assert parts[-1] == fresh_fold(state.snapshot(), 0, None)
