"""FATE: solver against brute force, each ablation switch, fallback and determinism."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace
from typing import Any

import pytest
from ortools.sat.python import cp_model

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.graph import WorkloadGraph
from airflow_fate.domain.models import ModelCatalog
from airflow_fate.planner.fate import ABLATIONS, Fate, FateConfig
from airflow_fate.planner.fate.scoring import TERMS, Scored
from airflow_fate.planner.fate.solver import (
    Choice,
    Problem,
    build_model,
    greedy_assign,
    solve,
)
from airflow_fate.planner.registry import make_policy
from airflow_fate.sim.simulator import simulate
from airflow_fate.state.cluster_state import (
    ClusterState,
    Snapshot,
    StageAssigned,
    StageStarted,
    WorkflowArrived,
)
from airflow_fate.state.hosting import Hosting
from tests.conftest import make_catalog, make_cluster, make_workload, stage

# ------------------------------------------------------------------ solver vs brute force


def brute_force(p: Problem) -> float:
    options = [[None, *range(len(p.choices[s]))] for s in p.stages]
    best = float("inf")
    for combo in itertools.product(*options):
        used: list[int] = []
        for s, i in zip(p.stages, combo, strict=True):
            if i is not None:
                used.extend(p.choices[s][i].gpus)
        if len(used) != len(set(used)):
            continue
        best = min(best, p.objective(dict(zip(p.stages, combo, strict=True))))
    return best


def random_problem(rng: random.Random) -> Problem:
    n_gpus = rng.randint(1, 3)
    stages = tuple(range(rng.randint(1, 4)))
    choices = {}
    for s in stages:
        groups = {
            tuple(sorted(rng.sample(range(n_gpus), rng.randint(1, min(2, n_gpus)))))
            for _ in range(3)
        }
        choices[s] = tuple(Choice(g, rng.uniform(-2.0, 10.0)) for g in sorted(groups))
    return Problem(
        stages=stages,
        weights={s: rng.uniform(0.5, 2.0) for s in stages},
        choices=choices,
        defer={s: rng.uniform(0.0, 12.0) for s in stages},
    )


@pytest.mark.parametrize("seed", range(60))
def test_cp_sat_matches_brute_force(seed: int) -> None:
    p = random_problem(random.Random(seed))
    sol = solve(p, build_model(p), time_limit_s=5.0, num_workers=1, random_seed=0)
    assert not sol.fallback
    assert p.objective(sol.picks) == pytest.approx(brute_force(p), abs=1e-5)


def test_models_are_built_without_the_camel_case_aliases() -> None:
    # What they solve to is checked against brute force above.
    lean = build_model(random_problem(random.Random(7))).cp
    assert hasattr(cp_model.CpModel(), "NewBoolVar") and not hasattr(lean, "NewBoolVar")


def test_policy_problem_matches_brute_force() -> None:
    """On a real tiny frontier (4 stages, 3 GPUs) the policy's choice is the optimum."""
    cluster = make_cluster([("n0", "big", 2), ("n1", "small", 1)])
    catalog = make_catalog()
    wl = make_workload(
        [stage("a"), stage("b", "mid-lm"), stage("c", "embed"), stage("d")], copies=1
    )
    snap = arrived_snapshot(cluster, catalog, wl)
    fate = Fate()
    cost = CostModel(cluster, catalog)
    problem = fate.build_problem(snap, cost, fate.score_frontier(snap, cost))
    sol = solve(problem, build_model(problem), time_limit_s=5.0, num_workers=1, random_seed=0)
    assert p_obj(problem, sol.picks) == pytest.approx(brute_force(problem), abs=1e-5)


def p_obj(p: Problem, picks: dict[int, int | None]) -> float:
    return p.objective(picks)


def test_greedy_is_not_optimal_where_the_solver_is() -> None:
    """`fate-greedy` differs from `fate` only in the assignment: here greedy loses."""
    p = Problem(
        stages=(0, 1),
        weights={0: 2.0, 1: 1.0},
        choices={
            0: (Choice((0,), 1.0), Choice((1,), 1.1)),
            1: (Choice((0,), 1.0), Choice((1,), 10.0)),
        },
        defer={0: 50.0, 1: 50.0},
    )
    sol = solve(p, build_model(p), time_limit_s=5.0, num_workers=1, random_seed=0)
    assert p.objective(sol.picks) == pytest.approx(2.2 + 1.0)
    assert p.objective(greedy_assign(p)) == pytest.approx(2.0 + 10.0)


def test_timeout_falls_back_to_greedy_and_is_counted() -> None:
    rng = random.Random(1)
    stages = tuple(range(120))
    choices = {
        s: tuple(Choice((g,), rng.uniform(0, 10)) for g in rng.sample(range(60), 8)) for s in stages
    }
    p = Problem(
        stages, {s: rng.uniform(0.5, 2) for s in stages}, choices, dict.fromkeys(stages, 20.0)
    )
    sol = solve(p, build_model(p), time_limit_s=10.0, num_workers=1, random_seed=0, work_limit=1e-9)
    assert sol.fallback
    assert sol.status == "UNKNOWN"
    assert sol.picks == greedy_assign(p)

    cluster, catalog = make_cluster(), make_catalog()
    wl = make_workload([stage(f"s{i}") for i in range(10)], copies=4, gap_s=0.0)
    policy = Fate("fate-tiny-limit", FateConfig(work_limit=1e-9))
    result = simulate(cluster, catalog, wl, policy, seed=0, noise=0.0)
    assert result.planner.fallbacks > 0


def test_deterministic_with_fixed_seed() -> None:
    cluster, catalog = make_cluster(), make_catalog()
    wl = make_workload(
        [stage("a"), stage("b", "mid-lm", ["a"]), stage("c", parents=["a"])], copies=6, gap_s=0.5
    )
    runs = [
        simulate(cluster, catalog, wl, make_policy("fate", 5), seed=5)
        .without_timings()
        .model_dump_json()
        for _ in range(2)
    ]
    assert runs[0] == runs[1]


def test_decision_records_carry_why_here() -> None:
    cluster, catalog = make_cluster(), make_catalog()
    wl = make_workload([stage("a"), stage("b", parents=["a"])], copies=3)
    result = simulate(cluster, catalog, wl, make_policy("fate"), seed=0)
    for p in result.placements:
        assert p.predicted is not None
        assert p.future_terms is not None and set(p.future_terms) == set(TERMS)
    runner_ups = [p.runner_up for p in result.placements if p.runner_up is not None]
    assert runner_ups
    for r in runner_ups:
        assert set(r) == {"node", "gpus", "score", "predicted"}
        assert set(r["predicted"]) == {"wait", "load", "input", "prefill", "decode"}  # type: ignore[arg-type]


# ------------------------------------------------------------------ ablation switches


def arrived_snapshot(
    cluster: Cluster, catalog: ModelCatalog, wl: Any, setup: Any = None
) -> Snapshot:
    graph = WorkloadGraph.from_workload(wl, catalog)
    state = ClusterState(cluster, catalog, graph)
    for w in graph.workflows:
        state.apply(WorkflowArrived(w.index, 0.0))
    if setup is not None:
        setup(state)
    return state.snapshot()


def options_for(snap: Snapshot, config: FateConfig, uid: int = 0) -> dict[tuple[int, ...], Scored]:
    fate = Fate("t", replace(config, top_k=50, prefilter=50))
    scored = fate.score_frontier(snap, CostModel(snap.cluster, snap.catalog))
    return {o.gpus: o for o in scored[uid]}


def flips(snap: Snapshot, switch: str, term: str, x: tuple[int, ...], y: tuple[int, ...]) -> None:
    """With the term on, y beats x because of it; switched off, the term is 0 and y does not."""
    on = options_for(snap, FateConfig())
    off = options_for(snap, FateConfig(**{switch: False}))
    i = TERMS.index(term)
    assert on[x].terms[i] != 0 or on[y].terms[i] != 0, f"{term} term absent in the case"
    assert on[y].score < on[x].score
    assert all(o.terms[i] == 0 for o in off.values())
    assert off[x].score <= off[y].score
    assert on[x].finish <= on[y].finish, "finish alone does not prefer y"


def test_eviction_switch() -> None:
    """Loading A on GPU 0 evicts B, which the child needs; GPU 1 has room beside C."""
    cluster = make_cluster([("n0", "tiny", 2)])
    cluster = cluster.model_copy(
        update={
            "gpu_types": {"tiny": cluster.gpu_types["big"].model_copy(update={"memory_gib": 10.0})}
        }
    )
    spec = {
        "weights_gib": 6.0,
        "kv_bytes_per_token": 0,
        "prefill_tokens_per_s": 10000,
        "decode_tokens_per_s": 1000,
    }
    small = {**spec, "weights_gib": 3.0}
    catalog = ModelCatalog.model_validate({"models": {"A": spec, "B": spec, "C": small}})
    wl = make_workload([stage("s", "A"), stage("child", "B", ["s"])], copies=1)

    def setup(state: ClusterState) -> None:
        state.preload("A", (0,))
        state.preload("B", (0,))
        state.preload("C", (1,))

    # A was loaded then evicted: both GPUs are cold for A, with A in the host cache.
    snap = arrived_snapshot(cluster, catalog, wl, setup)
    assert [m for m, _, _ in snap.gpus[0].resident] == ["B"]
    flips(snap, "eviction", "eviction", (0,), (1,))


def test_reachability_switch() -> None:
    """A small stage should not break the only idle pair that a sharded child needs."""
    cluster = make_cluster([("n0", "big", 4)])
    catalog = make_catalog()
    wl = make_workload(
        [stage("s", "small-lm"), stage("big", "big-lm", ["s"]), stage("busy", "small-lm")], copies=1
    )

    def setup(state: ClusterState) -> None:
        state.apply(StageAssigned(2, (3,), 0.0, 50.0))  # GPU 3 busy: pair (2, 3) is broken
        state.apply(StageStarted(2, 0.0))

    snap = arrived_snapshot(cluster, catalog, wl, setup)
    flips(snap, "reachability", "reachability", (0,), (2,))


def wide_and_big_cluster() -> Cluster:
    """Two one-GPU nodes of equal speed: 40 GiB (n0) and 80 GiB (n1)."""
    return Cluster.model_validate(
        {
            "gpu_types": {
                "wide": {"memory_gib": 40, "relative_speed": 1.0},
                "big": {"memory_gib": 80, "relative_speed": 1.0},
            },
            "interconnect": {
                "host_to_gpu_gbps": 25,
                "nvlink_gbps": 300,
                "local_disk_gbps": 3,
                "remote_store_gbps": 1.25,
            },
            "nodes": [
                {
                    "name": "n0",
                    "gpu_type": "wide",
                    "gpu_count": 1,
                    "host_cache_gib": 64,
                    "network_gbps": 12.5,
                },
                {
                    "name": "n1",
                    "gpu_type": "big",
                    "gpu_count": 1,
                    "host_cache_gib": 64,
                    "network_gbps": 12.5,
                },
            ],
        }
    )


def test_locality_switch() -> None:
    """The child's model only fits node 1, so s's large output should be made there."""
    cluster = wide_and_big_cluster()
    catalog = make_catalog(
        large={
            "weights_gib": 60.0,
            "kv_bytes_per_token": 0,
            "prefill_tokens_per_s": 9000,
            "decode_tokens_per_s": 900,
        }
    )
    wl = make_workload([stage("s", output_mb=5000.0), stage("child", "large", ["s"])], copies=1)
    snap = arrived_snapshot(cluster, catalog, wl)
    flips(snap, "locality", "locality", (0,), (1,))


def test_prefix_switch() -> None:
    """A sibling sharing the prefix fits only node 1 (long context): warm it there."""
    cluster = wide_and_big_cluster()
    catalog = make_catalog()
    pre = {"id": "sys", "tokens": 2000}
    wl = make_workload(
        [
            stage("s", "mid-lm", prefix=pre, input_tokens=3000, output_mb=0.0),
            stage("t", "mid-lm", ["s"], prefix=pre, input_tokens=200000),
        ],
        copies=1,
    )
    snap = arrived_snapshot(cluster, catalog, wl)
    flips(snap, "prefix", "prefix", (0,), (1,))


def test_residency_switch() -> None:
    """The only warm copy is busy: a second copy relieves the stages queued for the model."""
    cluster = make_cluster([("n0", "big", 1), ("n1", "big", 1)])
    catalog = make_catalog()
    children = [
        stage(f"c{i}", "mid-lm", ["s"], input_tokens=24000, output_tokens=2400) for i in range(8)
    ]
    wl = make_workload([stage("s", "mid-lm"), stage("blocker", "mid-lm"), *children], copies=1)

    def setup(state: ClusterState) -> None:
        state.preload("mid-lm", (0,))
        state.apply(StageAssigned(1, (0,), 0.0, 8.0))
        state.apply(StageStarted(1, 0.0))

    snap = arrived_snapshot(cluster, catalog, wl, setup)
    flips(snap, "residency", "residency", (0,), (1,))


def test_shards_switch() -> None:
    cluster, catalog = make_cluster([("n0", "big", 2)]), make_catalog()
    wl = make_workload([stage("s", "mid-lm", input_tokens=20000)], copies=1)
    snap = arrived_snapshot(cluster, catalog, wl)
    # The stage's run is mostly its cold load, which the widening rule alone would keep
    # narrow (tests/unit/planner/test_widening.py); switched off, this tests the switch.
    on = options_for(snap, FateConfig(widen_slack=None))
    off = options_for(snap, FateConfig(shards=False, widen_slack=None))
    assert min(on.values(), key=lambda o: o.score).gpus == (0, 1)
    assert all(len(g) == 1 for g in off)


def test_no_horizon_has_no_future_terms() -> None:
    cluster, catalog = make_cluster(), make_catalog()
    wl = make_workload([stage("a"), stage("b", parents=["a"], output_mb=100.0)], copies=2)
    snap = arrived_snapshot(cluster, catalog, wl)
    assert all(
        o.terms == (0.0,) * len(TERMS)
        for o in options_for(snap, ABLATIONS["fate-no-horizon"]).values()
    )
    assert any(o.terms != (0.0,) * len(TERMS) for o in options_for(snap, FateConfig()).values())


def test_no_credit_for_gpu_state_that_a_pod_per_stage_does_not_keep() -> None:
    """With a process per stage the residency, prefix and eviction terms have nothing to
    value; locality and reachability still apply. With workers that keep state they do
    move scores (so the check below can fail)."""
    cluster, catalog = make_cluster(), make_catalog()
    shared = {"id": "sys", "tokens": 300}
    wl = make_workload(
        [stage("a", prefix=shared), stage("b", parents=["a"], prefix=shared)], copies=4
    )
    kept_terms = set()
    for keep in (True, False):
        hosting = Hosting() if keep else Hosting.of("pod-per-stage", cluster)
        result = simulate(cluster, catalog, wl, make_policy("fate"), seed=1, hosting=hosting)
        for p in result.placements:
            assert p.future_terms is not None
            stateful = {t: p.future_terms[t] for t in ("residency", "prefix", "eviction")}
            if keep:
                kept_terms.update(t for t, v in stateful.items() if v != 0)
            else:
                assert set(stateful.values()) == {0.0}, stateful
    assert kept_terms, "with long-lived workers some stateful term is non-zero"


def test_eviction_counts_models_lost_with_a_replaced_worker() -> None:
    """B sits on a two-GPU worker over GPUs 0 and 1, with room to spare. A stage of A on
    GPU 0 alone needs a single-GPU worker there, which replaces B's worker: B is lost
    as surely as if memory had evicted it, and B's child pays for that. GPU 2 costs
    nothing of the kind."""
    spec = {
        "weights_gib": 4.0,
        "kv_bytes_per_token": 0,
        "prefill_tokens_per_s": 10000,
        "decode_tokens_per_s": 1000,
    }
    catalog = ModelCatalog.model_validate({"models": {"A": spec, "B": spec}})
    wl = make_workload([stage("s", "A"), stage("child", "B", ["s"])], copies=1)
    snap = arrived_snapshot(
        make_cluster([("n0", "big", 4)]), catalog, wl, lambda st: st.preload("B", (0, 1))
    )
    on = options_for(snap, FateConfig())
    i = TERMS.index("eviction")
    assert on[(0,)].terms[i] > 0, "B's worker is replaced"
    assert on[(2,)].terms[i] == 0
    assert on[(2,)].score < on[(0,)].score


# ------------------------------------------------------------------ fetch hold


def fetching_snapshot(nodes: int = 1) -> tuple[Snapshot, CostModel, float]:
    """4-GPU node n0 fetching mid-lm (15 GiB, 12.9 s from the remote store) for stage a
    since t=0, which then runs 50 s more; at t=1, b (mid-lm) and c (small-lm) are ready
    and the other GPUs idle."""
    cluster = make_cluster([(f"n{i}", "big", 4) for i in range(nodes)])
    catalog = make_catalog()
    wl = make_workload([stage("a", "mid-lm"), stage("b", "mid-lm"), stage("c")], copies=1)
    graph = WorkloadGraph.from_workload(wl, catalog)
    state = ClusterState(cluster, catalog, graph)
    state.apply(WorkflowArrived(0, 0.0))
    cost = CostModel(cluster, catalog)
    remote = cost.cold_load_time("mid-lm", (0,), state.snapshot())
    state.apply(StageAssigned(0, (0,), 0.0, remote + 50.0))
    state.apply(StageStarted(0, 0.0))
    state.now = 1.0
    return state.snapshot(), cost, remote


def test_a_stage_that_would_idle_on_a_fetch_is_held_until_the_fetch_is_nearly_through() -> None:
    snap, cost, remote = fetching_snapshot()
    plan = Fate("fate", FateConfig()).plan(snap, cost)
    placed = {a.stage for a in plan.assignments}
    assert placed == {2}, "c runs now; b would only wait for a's bytes"
    host = 15.0 * 1.073741824 / 25.0
    assert plan.wake_at == pytest.approx(remote - host), "b starts as the fetch ends"
    # At that time b no longer idles: it is placed.
    later = replace(snap, now=remote - host)
    assert 1 in {a.stage for a in Fate("fate", FateConfig()).plan(later, cost).assignments}


def test_without_the_hold_the_stage_waits_on_its_gpus() -> None:
    snap, cost, _ = fetching_snapshot()
    plan = Fate("fate", ABLATIONS["fate-no-fetch-hold"]).plan(snap, cost)
    assert {a.stage for a in plan.assignments} == {1, 2}
    assert plan.wake_at is None


def test_a_fetch_of_its_own_elsewhere_is_taken_when_it_finishes_nearly_as_soon() -> None:
    """On a second idle node, b fetches mid-lm itself and finishes 1 s after waiting on
    n0 would: within the slack, that copy is worth more than GPUs idling on n0."""
    snap, cost, _ = fetching_snapshot(nodes=2)
    plan = Fate("fate", FateConfig()).plan(snap, cost)
    where = {a.stage: a.gpus for a in plan.assignments}
    assert 1 in where and all(g >= 4 for g in where[1]), "b on node n1"
    strict = Fate("fate", FateConfig(fetch_slack=0.0)).plan(snap, cost)
    assert 1 not in {a.stage for a in strict.assignments}, "no slack: b is held"
    assert strict.wake_at is not None


@pytest.mark.parametrize(
    "config",
    [
        ABLATIONS["fate-rh-greedy"],
        ABLATIONS["fate-rh"],
        # One stage in the window: the other reaches its GPUs through the backfill.
        replace(ABLATIONS["fate-rh-greedy"], window_ready=1),
    ],
    ids=["rh-greedy", "rh", "rh-backfill"],
)
def test_the_receding_horizon_planner_holds_a_stage_that_would_idle_on_a_fetch(
    config: FateConfig,
) -> None:
    """The same rule as FATE's: b waits off its GPUs until a's fetch is nearly through."""
    snap, cost, remote = fetching_snapshot()
    plan = Fate("fate-rh", config).plan(snap, cost)
    assert {a.stage for a in plan.assignments} == {2}, "c runs now; b would only wait"
    host = 15.0 * 1.073741824 / 25.0
    assert plan.wake_at == pytest.approx(remote - host), "b is planned again as the fetch ends"
    later = replace(snap, now=remote - host)
    assert 1 in {a.stage for a in Fate("fate-rh", config).plan(later, cost).assignments}
    unheld = Fate("fate-rh", replace(config, fetch_hold_s=None)).plan(snap, cost)
    assert {a.stage for a in unheld.assignments} == {1, 2}, "without the hold b waits on GPUs"
