"""QueueFolds: what a GPU holds after its queue, kept between snapshots, equals a fresh
fold after any sequence of reservations, starts and finishes, and extends the last fold
instead of redoing it."""

from __future__ import annotations

import dataclasses
import random

from airflow_fate.domain.graph import WorkloadGraph
from airflow_fate.state.cluster_state import (
    ClusterState,
    FoldStep,
    GpuState,
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


def build(n_stages: int, seed: int) -> ClusterState:
    rng = random.Random(seed)
    stages = [stage(f"s{i}", f"m{rng.randrange(4)}") for i in range(n_stages)]
    cluster, catalog = make_cluster([("n0", "big", 4)]), make_catalog(**MODELS)
    graph = WorkloadGraph.from_workload(make_workload(stages, copies=1), catalog)
    state = ClusterState(cluster, catalog, graph)
    state.apply(WorkflowArrived(0, 0.0))
    return state


def assert_fresh(snap: Snapshot) -> None:
    """Every GPU's memoised fold equals one folded from scratch."""
    fresh = dataclasses.replace(snap, queue_folds=QueueFolds())
    for g in range(len(snap.gpus)):
        assert snap.resident_after_queue(g) == fresh.resident_after_queue(g), f"GPU {g}"


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
            # A planner's trial reservations share the memo with the state's snapshots.
            trial = snap
            for uid in waiting[:2]:
                trial = trial.reserve(uid, rng.choice(GROUPS), 1.0)
                assert_fresh(trial)


def test_a_reservation_or_a_started_head_extends_the_last_fold() -> None:
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
    step_of = lambda g: counting(snap._fold_step(g))  # noqa: E731
    first = folds.fold(0, snap.gpus[0], step_of)
    assert len(steps) == 5, "the first fold walks the whole queue"

    steps.clear()
    assert folds.fold(0, snap.gpus[0], step_of) is first
    assert steps == [], "the same GPU state is not folded again"

    reserved = snap.reserve(5, (0,), 1.0)
    folds.fold(0, reserved.gpus[0], step_of)
    assert len(steps) == 1, "a reservation folds only the stage it queued"

    steps.clear()
    state.apply(StageAssigned(5, (0,), 0.0, 1.0))
    folds.fold(0, state.gpu(0), step_of)
    state.apply(StageStarted(0, 0.0))
    started: GpuState = state.gpu(0)
    assert folds.fold(0, started, step_of) == dataclasses.replace(
        snap, gpus=(started, *snap.gpus[1:]), queue_folds=QueueFolds()
    ).resident_after_queue(0)
    assert len(steps) == 1, "one step checks the head's load; the rest is not refolded"
