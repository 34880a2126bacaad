"""FATE's receding-horizon schedule: window, CP-SAT model, greedy fallback, launches."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace
from typing import Any

import pytest

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.graph import WorkloadGraph
from airflow_fate.planner.fate import Fate, FateConfig
from airflow_fate.planner.fate.receding import plan_window
from airflow_fate.planner.fate.schedule import WEIGHT_SCALE, add_hint, build_model, solve
from airflow_fate.planner.fate.serial import serial_schedule
from airflow_fate.planner.fate.window import (
    Option,
    Window,
    WindowPlan,
    WindowStage,
    soon_ready,
    starts_now,
)
from airflow_fate.planner.registry import make_policy
from airflow_fate.sim.simulator import simulate
from airflow_fate.state.cluster_state import (
    ClusterState,
    StageAssigned,
    StageStarted,
    WorkflowArrived,
)
from tests.conftest import make_catalog, make_cluster, make_workload, stage

RH = FateConfig(receding_horizon=True)


def solved(window: Window, **kw: Any) -> WindowPlan:
    m = build_model(window)
    add_hint(window, m, serial_schedule(window))
    result = solve(window, m, time_limit_s=10.0, num_workers=1, random_seed=0, **kw)
    assert result.plan is not None, result.status
    return result.plan


def objective(window: Window, plan: WindowPlan) -> int:
    total = 0
    for s in window.stages:
        o = s.options[plan.choice[s.uid]]
        w = round(s.weight * WEIGHT_SCALE)
        total += w * (plan.start[s.uid] + o.run) + w * o.extra
    return total


def ready_state(
    stages: list[dict[str, Any]],
    nodes: list[tuple[str, str, int]],
    preload: tuple[tuple[str, tuple[int, ...]], ...] = (),
    **models: dict[str, Any],
) -> tuple[ClusterState, CostModel]:
    cluster, catalog = make_cluster(nodes), make_catalog(**models)
    graph = WorkloadGraph.from_workload(make_workload(stages, copies=1), catalog)
    state = ClusterState(cluster, catalog, graph)
    for model, gpus in preload:
        state.preload(model, gpus)
    state.apply(WorkflowArrived(0, 0.0))
    return state, CostModel(cluster, catalog)


# ------------------------------------------------------------------ batching vs loading


def test_batches_same_model_stages_on_the_gpu_that_holds_the_model() -> None:
    """Two short mid-lm stages: both on warm GPU 0 (0.17 s each) beat a 0.64 s load on 1."""
    state, cost = ready_state(
        [stage("a", "mid-lm"), stage("b", "mid-lm")], [("n0", "big", 2)], (("mid-lm", (0,)),)
    )
    snap = state.snapshot()
    plan = Fate("fate-rh", RH).plan(snap, cost)
    assert [(a.gpus, a.record.cost.load if a.record else None) for a in plan.assignments] == [
        ((0,), 0.0)
    ], "one stage starts now on the warm GPU; the other waits for it, unbound"


def test_loads_on_an_idle_gpu_when_waiting_for_the_warm_one_is_slower() -> None:
    """Long stages (20k output tokens, about 17 s): the 0.64 s load on GPU 1 pays."""
    long = {"output_tokens": 20000, "max_shards": 1}
    state, cost = ready_state(
        [stage("a", "mid-lm", **long), stage("b", "mid-lm", **long)],
        [("n0", "big", 2)],
        (("mid-lm", (0,)),),
    )
    plan = Fate("fate-rh", RH).plan(state.snapshot(), cost)
    assert sorted(a.gpus for a in plan.assignments) == [(0,), (1,)]


def test_the_window_sees_enough_of_a_hot_models_queue_to_open_a_copy() -> None:
    """14 short mid-lm stages (0.09 s warm) and a 0.64 s load that evicts ``filler``.

    The ninth stage in line on the warm GPU would end after a new copy's first stage, so
    a window holding at least nine of them opens the copy now. A window capped at six
    never sees that queue, and the backfill does not make loads that evict: the second
    GPU would idle while the queue drains through one copy. Future terms are off so the
    window's own schedule decides.
    """
    filler = {
        "weights_gib": 70.0,
        "kv_bytes_per_token": 65536,
        "prefill_tokens_per_s": 20000,
        "decode_tokens_per_s": 2000,
    }
    short = {"output_tokens": 5, "max_shards": 1}
    state, cost = ready_state(
        [stage(f"h{i}", "mid-lm", **short) for i in range(14)],
        [("n0", "big", 2)],
        (("mid-lm", (0,)), ("filler", (1,))),
        filler=filler,
    )
    config = FateConfig(receding_horizon=True, use_solver=False, window_terms=False)

    def launches(cfg: FateConfig) -> list[tuple[tuple[int, ...], bool]]:
        plan = Fate("fate-rh-greedy", cfg).plan(state.snapshot(), cost)
        return sorted((a.gpus, bool(a.record and a.record.cost.load > 0)) for a in plan.assignments)

    assert launches(config) == [((0,), False), ((1,), True)], "a second copy loads on GPU 1"
    assert launches(replace(config, window_per_model=6)) == [((0,), False)]


def test_window_schedule_shares_one_load_between_stages_of_a_model() -> None:
    both = (Option((0,), 0, 10, 0), Option((1,), 0, 10, 50))
    stages = (
        *(WindowStage(u, "m", 1.0, True, (), both) for u in range(3)),
        WindowStage(3, "m", 1.0, True, (), (Option((1,), 0, 10, 50),)),
    )
    plan = solved(Window(stages, {0: 0, 1: 0}))
    assert plan.loads == {("m", (1,)): 0}, "stage 3 must load m on GPU 1"
    assert plan.start[3] == 50
    assert [plan.choice[u] for u in range(3)] == [0, 0, 0], "warm GPU 0 (ends 10, 20, 30)"


# ------------------------------------------------------------------ model structure


def test_shard_group_is_one_interval_on_every_gpu_of_the_group() -> None:
    window = Window(
        (
            WindowStage(0, "big", 2.0, True, (), (Option((0, 1), 0, 30, 0),)),
            WindowStage(1, "small", 1.0, True, (), (Option((1,), 0, 10, 0),)),
        ),
        {0: 0, 1: 0},
    )
    m = build_model(window)
    assert "run_s0_o0" in m.on_gpu[0] and "run_s0_o0" in m.on_gpu[1]
    assert m.on_gpu[1].count("run_s0_o0") == 1
    plan = solved(window)
    assert plan.start[0] + 30 <= plan.start[1] or plan.start[1] + 10 <= plan.start[0]


def test_eviction_orders_warm_runs_before_the_load_that_evicts_them() -> None:
    """GPU 0 holds A; B's load there evicts A: A's warm run must come first."""
    window = Window(
        (
            WindowStage(0, "B", 3.0, True, (), (Option((0,), 0, 10, 20),)),
            WindowStage(1, "A", 1.0, True, (), (Option((0,), 0, 10, 0),)),
        ),
        {0: 0},
        evicts={("B", (0,)): frozenset({("A", (0,))})},
    )
    plan = solved(window)
    assert plan.start[1] + 10 <= plan.loads["B", (0,)]


def test_clashing_loads_finish_one_model_before_the_other_loads() -> None:
    window = Window(
        tuple(
            WindowStage(u, model, 1.0, True, (), (Option((0,), 0, 10, 5),))
            for u, model in enumerate(["A", "B", "A"])
        ),
        {0: 0},
        clashes=((("A", (0,)), ("B", (0,))),),
    )
    plan = solved(window)
    a_end = max(plan.start[u] + 10 for u in (0, 2))
    b_load = plan.loads["B", (0,)]
    a_load = plan.loads["A", (0,)]
    assert a_end <= b_load or plan.start[1] + 10 <= a_load
    assert len(plan.loads) == 2, "no model loads twice within a window"


def test_child_waits_for_parent_and_its_transfer() -> None:
    window = Window(
        (
            WindowStage(0, "m", 1.0, True, (), (Option((0,), 0, 10, 0),)),
            WindowStage(1, "m", 1.0, False, (0,), (Option((0,), 0, 10, 0), Option((1,), 0, 1, 0))),
        ),
        {0: 0, 1: 0},
        transfer={(0, 0, 1, 1): 25},
    )
    plan = solved(window)
    assert plan.choice[1] == 0, "following on GPU 0 (ends 20) beats moving (ends 36)"
    assert plan.start[1] >= 10
    assert starts_now(window, plan) == [(0, 0)], "a soon-ready stage never starts now"


# ------------------------------------------------------------------ solver vs oracles


def random_window(rng: random.Random) -> Window:
    """Up to 4 ready stages on 1-2 GPUs, warm options only, no loads (brute-forceable)."""
    gpus = rng.randint(1, 2)
    stages = []
    for u in range(rng.randint(1, 4)):
        opts = tuple(
            Option((g,), rng.randint(0, 5), rng.randint(1, 9), 0, rng.randint(-3, 3))
            for g in range(gpus)
            if rng.random() < 0.8 or g == 0
        )
        stages.append(WindowStage(u, "m", rng.choice([0.5, 1.0, 1.5]), True, (), opts))
    return Window(tuple(stages), dict.fromkeys(range(gpus), 0))


def brute_force(window: Window) -> int:
    """Best objective over every option choice and every order of starts (serial SGS)."""
    best = None
    stages = window.stages
    for choice in itertools.product(*(range(len(s.options)) for s in stages)):
        for order in itertools.permutations(range(len(stages))):
            avail = dict(window.free)
            total = 0
            for k in order:
                s, o = stages[k], stages[k].options[choice[k]]
                begin = max([o.earliest, *(avail[g] for g in o.gpus)])
                avail.update(dict.fromkeys(o.gpus, begin + o.run))
                w = round(s.weight * WEIGHT_SCALE)
                total += w * (begin + o.run) + w * o.extra
            best = total if best is None else min(best, total)
    assert best is not None
    return best


@pytest.mark.parametrize("seed", range(40))
def test_cp_sat_schedule_matches_brute_force(seed: int) -> None:
    window = random_window(random.Random(seed))
    assert objective(window, solved(window)) == brute_force(window)


@pytest.mark.parametrize("seed", range(20))
def test_cp_sat_is_never_worse_than_its_greedy_hint(seed: int) -> None:
    rng = random.Random(seed)
    stages = tuple(
        WindowStage(
            u,
            rng.choice("ABC"),
            rng.uniform(0.5, 2.0),
            True,
            (),
            tuple(
                Option((g,), rng.randint(0, 20), rng.randint(1, 30), rng.choice([0, 15]))
                for g in rng.sample(range(3), 2)
            ),
        )
        for u in range(6)
    )
    window = Window(stages, dict.fromkeys(range(3), 0))
    greedy = serial_schedule(window)
    assert len(greedy.choice) == len(stages)
    assert objective(window, solved(window)) <= objective(window, greedy)


# ------------------------------------------------------------------ fallback, liveness


def test_falls_back_to_the_greedy_schedule_when_the_solver_finds_nothing() -> None:
    state, cost = ready_state(
        [stage("a", "mid-lm"), stage("b", "mid-lm"), stage("c", "small-lm")],
        [("n0", "big", 2)],
        (("mid-lm", (0,)),),
    )
    snap = state.snapshot()
    policy = Fate("fate-rh", FateConfig(receding_horizon=True, work_limit=1e-9))
    scored = policy.score_frontier(snap, cost)
    weights = dict.fromkeys(scored, 1.0)
    decision = plan_window(snap, cost, scored, [], weights, policy.config)
    assert decision.fallback and decision.status == "UNKNOWN"
    greedy = plan_window(
        snap, cost, scored, [], weights, FateConfig(receding_horizon=True, use_solver=False)
    )
    assert decision.launch == greedy.launch != ()

    wl = make_workload([stage(f"s{i}") for i in range(6)], copies=3, gap_s=0.0)
    result = simulate(make_cluster(), make_catalog(), wl, policy, seed=0, noise=0.0)
    assert result.planner.fallbacks > 0
    assert len(result.placements) == 18


def test_plans_nothing_while_no_gpu_is_free() -> None:
    state, cost = ready_state([stage("a"), stage("b")], [("n0", "big", 1)])
    state.apply(StageAssigned(0, (0,), 0.0, 5.0))
    state.apply(StageStarted(0, 0.0))
    assert Fate("fate-rh", RH).plan(state.snapshot(), cost).assignments == ()


def test_soon_ready_are_children_whose_other_parents_are_done_or_near() -> None:
    state, _cost = ready_state(
        [stage("a"), stage("b"), stage("c", parents=["a"]), stage("d", parents=["a", "b"])],
        [("n0", "big", 2)],
    )
    state.apply(StageAssigned(0, (0,), 0.0, 5.0))
    state.apply(StageStarted(0, 0.0))
    snap = state.snapshot()
    assert soon_ready(snap, []) == [2], "d also waits on b, which is not planned"
    assert soon_ready(snap, [1]) == [2, 3]


def test_receding_horizon_is_deterministic() -> None:
    cluster, catalog = make_cluster(), make_catalog()
    wl = make_workload(
        [stage("a"), stage("b", "mid-lm", ["a"]), stage("c", parents=["a"])], copies=6, gap_s=0.5
    )
    runs = [
        simulate(cluster, catalog, wl, make_policy("fate-rh", 5), seed=5)
        .without_timings()
        .model_dump_json()
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
