"""FATE's knobs, with the ablation switches the benchmark turns off one at a time."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class FateConfig:
    """Settings of one FATE planner.

    Attributes:
        horizon: look-ahead depth in DAG hops below each frontier stage.
        hop_discount: weight of a term one hop further away (the next hop counts
            ``hop_discount`` times as much), as later stages are less certain to profit.
        alpha: weight of the credits (state left behind that later stages will use).
        beta: weight of the debits (state destroyed that later stages need).
        age_weight: weight of a workflow's age in a stage's criticality (tail latency).
        max_queue: skip GPUs with more than this many stages already queued (None: no
            limit); late binding keeps decisions open until GPUs are nearly free.
        node_shortlist: nodes considered per stage beyond those holding its state: the
            ones whose GPUs free soonest (bounds planning cost on large clusters).
        prefilter: candidates scored in full per stage: the earliest-finishing ones (by
            the plain estimate) plus the earliest on every other node.
        top_k: candidates kept per stage: top-k by score plus top-k by finish time.
        max_shards: global bound on a stage's shard degree (None: the stage's own max).
        work_limit: CP-SAT deterministic-time limit per decision (solver work units,
            about seconds); reproducible on busy and idle machines alike. The greedy
            answer is used when it expires without a feasible solution.
        time_limit_s: wall-clock safety net per decision (keeps the loop live on a
            starved machine; if it fires, results may differ between runs).
        num_workers: CP-SAT search workers (1 keeps runs reproducible).
        random_seed: CP-SAT seed.
        use_solver: False assigns greedily by criticality with the same scores.
        projection_window_s: how far ahead the residency term projects each model's
            demand from its observed arrival rate (0 switches the projection off).
        projection_discount: weight of a projected (not yet arrived) stage.
        rate_floor_s: the rate is counted over at least this many seconds, so the first
            arrivals do not extrapolate to a flood.
        residency, locality, prefix, eviction, reachability: switch each future term.
        shards: False restricts every stage to its smallest fitting degree.
        shard_pressure: on a node with at least this fraction of its GPUs busy, stages get
            only their smallest fitting degree. The default allows wide groups only on a
            node with nothing else running: on the real-dag benchmark every wider setting
            lost makespan and P95 to queued stages (see docs/results).
    """

    horizon: int = 2
    hop_discount: float = 0.5
    alpha: float = 1.0
    beta: float = 1.0
    age_weight: float = 0.0
    max_queue: int | None = None
    node_shortlist: int = 4
    prefilter: int = 4
    top_k: int = 3
    max_shards: int | None = None
    work_limit: float = 0.05
    time_limit_s: float = 2.0
    num_workers: int = 1
    random_seed: int = 0
    use_solver: bool = True
    projection_window_s: float = 60.0
    projection_discount: float = 0.5
    rate_floor_s: float = 30.0
    residency: bool = True
    locality: bool = True
    prefix: bool = True
    eviction: bool = True
    reachability: bool = True
    shards: bool = True
    shard_pressure: float = 0.01

    def without(self, **switches: bool) -> FateConfig:
        return replace(self, **switches)


ABLATIONS: dict[str, FateConfig] = {
    "fate": FateConfig(),
    "fate-no-horizon": FateConfig(horizon=0),
    "fate-no-residency": FateConfig(residency=False),
    "fate-no-locality": FateConfig(locality=False),
    "fate-no-prefix": FateConfig(prefix=False),
    "fate-no-reachability": FateConfig(reachability=False),
    "fate-no-shards": FateConfig(shards=False),
    "fate-no-eviction": FateConfig(eviction=False),
    "fate-greedy": FateConfig(use_solver=False),
}
