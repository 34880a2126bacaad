"""`Fate`: future-state-aware frontier planning (arXiv 2605.07238), one decision at a time.

Per epoch:

1. Look-ahead: descendants of the frontier within ``horizon`` hops, indexed by model,
   prefix and shard need (`lookahead`).
2. Candidates per frontier stage: single GPUs (one per class the cost model can tell
   apart, plus the one whose loading evicts least) and shard groups of k GPUs inside a
   node, bounded by the stage's and the global shard limits (`candidates.groups_for`).
   GPUs that already have a stage queued are skipped, so at most one stage waits on a
   busy GPU; busy GPUs with an empty queue count, with their wait in the finish time.
   Frontier stages that agree on all a candidate list depends on (model, prefix, what
   fits where, where their parents ran) share one per epoch (`Fate._candidate_key`).
3. Score = finish + future terms (`scoring`); keep the top-k by score and by finish.
4. Joint assignment (`solver`): at most one candidate per stage, no GPU twice, weights
   from criticality (upward rank), deferral priced at the stage's best score plus its
   best run (it will wait about one stage's length).
5. Each placement carries its decision record: breakdown, future terms, runner-up.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.graph import StageInfo
from airflow_fate.domain.plan import Assignment, DecisionRecord, Plan, StageCost
from airflow_fate.planner.candidates import groups_for
from airflow_fate.planner.fate.backlog import BacklogValue
from airflow_fate.planner.fate.config import FateConfig
from airflow_fate.planner.fate.demand import DemandRates
from airflow_fate.planner.fate.lookahead import build_lookahead
from airflow_fate.planner.fate.receding import WindowDecision, backfill, plan_window
from airflow_fate.planner.fate.scoring import TERMS, Scored, Scorer
from airflow_fate.planner.fate.solver import Choice, Problem, build_model, greedy_assign, solve
from airflow_fate.planner.fate.window import soon_ready
from airflow_fate.planner.ranks import upward_ranks
from airflow_fate.state.cluster_state import Snapshot

MIN_DEFER_S = 1e-3
"""Deferring always costs at least a millisecond, so ties go to placing now."""


class Fate:
    """The FATE policy (and, with switches off, its ablations)."""

    def __init__(self, name: str = "fate", config: FateConfig | None = None, seed: int = 0) -> None:
        self.name = name
        self.config = config or FateConfig()
        self._ranks: dict[int, float] = {}
        self._ranked: set[int] = set()
        self._demand = DemandRates()

    def _rank(self, snap: Snapshot, cost: CostModel, uid: int) -> float:
        wf = snap.graph.stages[uid].workflow
        if wf not in self._ranked:
            self._ranked.add(wf)
            self._ranks.update(upward_ranks(snap.graph, wf, snap.cluster, cost))
        return self._ranks[uid]

    def _weights(self, snap: Snapshot, ranks: dict[int, float]) -> dict[int, float]:
        """Criticality: upward rank (relative to the frontier's largest) plus age.

        The rank keeps long remaining paths moving (makespan); the age term, the
        workflow's time since arrival relative to the oldest in the frontier, keeps the
        tail of workflow latency from starving behind newer critical work (P95).
        """
        stages = snap.graph.stages
        age = {u: snap.now - snap.arrived.get(stages[u].workflow, snap.now) for u in ranks}
        if self.config.projected_latency:
            projected = {u: age[u] + ranks[u] for u in ranks}
            longest = max(projected.values()) or 1.0
            return {u: 0.5 + projected[u] / longest for u in ranks}
        top = max(ranks.values()) or 1.0
        oldest = max(age.values()) or 1.0
        w_age = self.config.age_weight
        return {u: 0.5 + ranks[u] / top + w_age * age[u] / oldest for u in ranks}

    def candidates(self, snap: Snapshot, cost: CostModel, uid: int) -> list[tuple[int, ...]]:
        """Candidate groups of one frontier stage (see the module docstring, step 2)."""
        return list(self._candidates(snap.graph.stages[uid], snap, cost, _roomiest_idle(snap)))

    def _candidates(
        self,
        stage: StageInfo,
        snap: Snapshot,
        cost: CostModel,
        roomiest: list[tuple[int, ...]],
    ) -> list[tuple[int, ...]]:
        """`candidates`, given the snapshot's `_roomiest_idle` GPUs.

        Shard degrees are bounded by load: on a node with at least ``shard_pressure`` of its
        GPUs busy only the smallest fitting degree is offered. A wider group finishes one
        stage sooner but takes GPUs that queued stages would run on in parallel; measured
        on the real-dag suite, under load the narrow layout wins on makespan and P95.
        """
        bound = self._shard_bound(stage)
        groups = groups_for(stage, snap, cost, bound, _shortlist(stage, snap, cost, self.config))
        fitting = cost.degrees_by_node(stage)
        node_of = snap.cluster.gpus
        # A single GPU fits where degree 1 does (what `CostModel.estimate` checks).
        groups.extend(g for g in roomiest if g not in groups and 1 in fitting[node_of[g[0]].node])
        smallest = {n: ks[0] for n, ks in enumerate(fitting) if ks}
        pressure = 0.0 if self.config.shards else 1.0
        groups = [
            g
            for g in groups
            if len(g) == smallest.get(node := node_of[g[0]].node)
            or max(pressure, _node_busy(snap, node)) < self.config.shard_pressure
        ]
        if self.config.max_queue is not None:
            limit = self.config.max_queue
            groups = [g for g in groups if all(len(snap.gpus[x].pending) <= limit for x in g)]
        return groups

    def _shard_bound(self, stage: StageInfo) -> int | None:
        """The cap on optional widening: without shards, none beyond the smallest fitting
        degree per node (which may exceed min_shards where the model needs more GPUs of
        that type)."""
        return self.config.max_shards if self.config.shards else stage.min_shards

    def _candidate_key(
        self, stage: StageInfo, snap: Snapshot, cost: CostModel
    ) -> tuple[object, ...]:
        """What `_candidates` reads of a stage: frontier stages that agree on it share
        their candidates within an epoch (stages of one template differ in token counts,
        rarely in what fits where)."""
        parents = tuple(sorted(g for p in stage.parents for g in snap.placement.get(p, ())))
        return (
            stage.model,
            stage.prefix_id,
            cost.degrees_by_node(stage),
            cost.degrees_by_node(stage, self._shard_bound(stage)),
            cost.degrees_by_node(stage, self.config.max_shards),
            parents,
        )

    def score_frontier(
        self, snap: Snapshot, cost: CostModel, stages: Iterable[int] | None = None
    ) -> dict[int, list[Scored]]:
        """Steps 1-3: look-ahead, candidates, scores; the kept options of each stage.

        ``stages`` narrows the scoring to those frontier stages (default: all); the
        look-ahead still counts the whole frontier's demand.
        """
        cfg = self.config
        look = build_lookahead(snap, cost, cfg.horizon, cfg.hop_discount)
        if cfg.residency and cfg.horizon > 0:
            look.projected = self._demand.update(snap, cost, cfg.rate_floor_s)
        scorer = Scorer(snap, cost, look, cfg)
        graph_stages = snap.graph.stages
        stages_to_score = None if stages is None else list(stages)
        roomiest = _roomiest_idle(snap)
        groups_by_key: dict[tuple[object, ...], list[tuple[int, ...]]] = {}
        scored: dict[int, list[Scored]] = {}
        for uid in snap.frontier if stages_to_score is None else stages_to_score:
            stage = graph_stages[uid]
            key = self._candidate_key(stage, snap, cost)
            groups = groups_by_key.get(key)
            if groups is None:
                groups = groups_by_key[key] = self._candidates(stage, snap, cost, roomiest)
            quick = [
                (est.total, g, est)
                for g in groups
                if (est := cost.estimate(stage, g, snap)) is not None
            ]
            if cfg.widen_slack is not None:
                quick = _worth_widening(quick, snap, cfg.widen_slack)
            options = [
                scorer.score(stage, g, est) for g, est in _prefilter(quick, snap, cfg.prefilter)
            ]
            if options and cfg.receding_horizon:
                # The schedule spreads a model's stages over copies and nodes itself: it
                # needs every node's best option, not just the few each stage alone likes.
                scored[uid] = sorted(options, key=lambda o: (o.score, o.gpus))
            elif options:
                by_score = sorted(options, key=lambda o: (o.score, o.gpus))[: cfg.top_k]
                by_finish = sorted(options, key=lambda o: (o.finish, o.gpus))[: cfg.top_k]
                scored[uid] = list(dict.fromkeys([*by_score, *by_finish]))
        return scored

    def build_problem(
        self, snap: Snapshot, cost: CostModel, scored: dict[int, list[Scored]]
    ) -> Problem:
        """Step 4's data: weights, choices and deferral costs of the scored frontier."""
        ranks = {u: self._rank(snap, cost, u) for u in scored}
        return Problem(
            stages=tuple(sorted(scored)),
            weights=self._weights(snap, ranks),
            choices={u: tuple(Choice(o.gpus, o.score) for o in scored[u]) for u in scored},
            defer={u: _defer_cost(scored[u]) for u in scored},
        )

    def plan(self, snap: Snapshot, cost: CostModel) -> Plan:
        if self.config.receding_horizon:
            return self.plan_receding(snap, cost)
        cfg = self.config
        scored = self.score_frontier(snap, cost)
        wake_at = None
        if cfg.fetch_hold_s is not None:
            scored, held = _fetch_holds(snap, cost, scored, cfg)
            wake_at = min(held.values(), default=None)
        if not scored:
            return Plan(wake_at=wake_at)
        problem = self.build_problem(snap, cost, scored)
        if cfg.use_solver:
            solution = solve(
                problem,
                build_model(problem),
                time_limit_s=cfg.time_limit_s,
                work_limit=cfg.work_limit,
                num_workers=cfg.num_workers,
                random_seed=cfg.random_seed,
            )
            picks, fallback = solution.picks, solution.fallback
        else:
            picks, fallback = greedy_assign(problem), False
        if all(i is None for i in picks.values()) and not _work_in_flight(snap):
            # Deferring now would wait for an event that never comes: place greedily.
            picks = greedy_assign(replace(problem, defer=dict.fromkeys(problem.stages, math.inf)))
        out: list[Assignment] = []
        for uid in problem.stages:
            i = picks[uid]
            if i is None:
                continue
            out.append(Assignment(uid, scored[uid][i].gpus, _record(scored[uid], i)))
        return Plan(assignments=tuple(out), fallback=fallback, wake_at=wake_at)

    def plan_receding(self, snap: Snapshot, cost: CostModel) -> Plan:
        """The receding-horizon step (`receding`): launch what the window schedule starts now.

        Nothing can start while no GPU is free, so such epochs plan nothing: the next
        finish plans again, with everything still unbound.
        """
        if not any(snap.idle(g) for g in range(len(snap.gpus))):
            return Plan()
        cfg = self.config
        ranks = {u: self._rank(snap, cost, u) for u in snap.frontier}
        weights = self._weights(snap, ranks)
        ready = _window_ready(snap, weights, cfg.window_ready, cfg.window_per_model)
        scored = self.score_frontier(snap, cost, ready)
        held: dict[int, float] = {}
        if cfg.fetch_hold_s is not None:
            scored, held = _fetch_holds(snap, cost, scored, cfg)
        decision, weights = self._schedule_window(snap, cost, scored, ranks, weights)
        out: list[Assignment] = []
        for uid, gpus in decision.launch:
            i = next(j for j, o in enumerate(scored[uid]) if o.gpus == gpus)
            out.append(Assignment(uid, gpus, _record(scored[uid], i)))
        taken = {g for _, gpus in decision.launch for g in gpus}
        rest = sorted(
            (u for u in snap.frontier if u not in scored and u not in held),
            key=lambda u: (-weights[u], u),
        )
        filled = backfill(
            snap, cost, rest, taken, decision.idle_for, cfg.max_shards, cfg.fetch_hold_s
        )
        for uid, gpus, est in filled:
            out.append(Assignment(uid, gpus, DecisionRecord(cost=est, score=est.total)))
        if not out and not _work_in_flight(snap):
            # Nothing would start and no finish is coming: place greedily now.
            problem = self.build_problem(snap, cost, scored)
            picks = greedy_assign(replace(problem, defer=dict.fromkeys(problem.stages, math.inf)))
            out = [
                Assignment(u, scored[u][i].gpus, _record(scored[u], i))
                for u, i in sorted(picks.items())
                if i is not None
            ]
        wake_at = min(held.values(), default=None)
        return Plan(assignments=tuple(out), fallback=decision.fallback, wake_at=wake_at)

    def _schedule_window(
        self,
        snap: Snapshot,
        cost: CostModel,
        scored: dict[int, list[Scored]],
        ranks: dict[int, float],
        weights: dict[int, float],
    ) -> tuple[WindowDecision, dict[int, float]]:
        """The window schedule of the scored ready stages and the soon-ready ones they
        lead to, and the weights it used: ``weights`` (of ``ranks``) when the window is
        empty (every ready stage held, or none fits; it launches nothing), else those of
        ``ranks`` with the soon-ready stages' added."""
        if not scored:
            return WindowDecision((), False, "EMPTY", {}), weights
        cfg = self.config
        soon = soon_ready(snap, list(scored))
        ranks.update((u, self._rank(snap, cost, u)) for u in soon)
        weights = self._weights(snap, ranks)
        soon = sorted(soon, key=lambda u: (-weights[u], u))[: cfg.window_soon]
        backlog = None
        if cfg.window_backlog and snap.gpus_keep_state:
            # Counts only workflows not seen yet: scoring has counted them when the
            # residency term is on.
            self._demand.update(snap, cost, cfg.rate_floor_s)
            backlog = BacklogValue(snap, self._demand.mean_runs())
        return plan_window(snap, cost, scored, soon, weights, cfg, backlog), weights


def _window_ready(
    snap: Snapshot, weights: dict[int, float], size: int, per_model: int
) -> list[int]:
    """The most critical ready stages, at most ``per_model`` of any one model.

    Stages of one model beyond the first dozen or so queue behind the same copies and
    start past the window; their slots go to other models' stages, whose GPUs would idle
    otherwise. Too small a cap hides the queue of a bottleneck model, and with it the
    reason to open another copy (ADR 0013, amendment on twelve stages per model).
    """
    taken: dict[str, int] = {}
    out: list[int] = []
    stages = snap.graph.stages
    for u in sorted(snap.frontier, key=lambda u: (-weights[u], u)):
        model = stages[u].model
        if taken.get(model, 0) < per_model:
            taken[model] = taken.get(model, 0) + 1
            out.append(u)
            if len(out) == size:
                break
    return out


def _shortlist(stage: StageInfo, snap: Snapshot, cost: CostModel, cfg: FateConfig) -> list[int]:
    """Nodes worth a look for ``stage``: where its state is, plus the soonest free.

    State: nodes holding its model (on GPUs or in the host cache), its prefix KV or a
    parent's output. Capacity: the ``cfg.node_shortlist`` fitting nodes whose first GPU
    frees soonest. On the example cluster this is nearly every node; on a 64-node one it
    keeps planning cost flat.
    """
    node_of = snap.cluster.gpus
    keep: set[int] = {node_of[g[0]].node for g in snap.model_groups(stage.model)}
    keep.update(n for n, ns in enumerate(snap.nodes) if ns.cached(stage.model))
    if stage.prefix_id:
        keep.update(node_of[g].node for g in snap.prefix_gpus((stage.model, stage.prefix_id)))
    for p in stage.parents:
        keep.update(node_of[g].node for g in snap.placement.get(p, ()))
    fitting = [n for n, ks in enumerate(cost.degrees_by_node(stage, cfg.max_shards)) if ks]
    soonest = sorted(fitting, key=lambda n: (snap.gpus[snap.wait_order[n][0]].busy_until, n))[
        : cfg.node_shortlist
    ]
    keep.update(soonest)
    return sorted(n for n in keep if n in set(fitting))


def _roomiest_idle(snap: Snapshot) -> list[tuple[int, ...]]:
    """Per node, the idle GPU with the least resident weight: where a load evicts least.

    The candidate classes collapse GPUs that the estimate cannot tell apart, but what a
    load evicts differs between them; this keeps the gentlest one in reach.
    """
    out: list[tuple[int, ...]] = []
    now = snap.now
    for node_gpus in snap.cluster.node_gpus:
        idle = [
            g
            for g in node_gpus
            if snap.gpus[g].running is None
            and not snap.gpus[g].pending
            and snap.gpus[g].busy_until <= now
        ]
        if idle:
            out.append((min(idle, key=lambda g: (snap.gpus[g].weights_gib, g)),))
    return out


def _worth_widening(
    quick: list[tuple[float, tuple[int, ...], StageCost]], snap: Snapshot, slack: float
) -> list[tuple[float, tuple[int, ...], StageCost]]:
    """Drop groups wider than a node's narrowest option that cost more GPU-seconds.

    A wider group finishes the stage sooner only by holding more GPUs; when the run is
    mostly a load that does not split (weights read once per node from disk or the
    remote store), the extra GPUs sit idle for it. Keep a wider group only if its
    GPU-seconds (k x run) are within ``1 + slack`` of the narrowest group's on that node.
    """
    narrowest: dict[int, tuple[int, float]] = {}
    for _, g, est in quick:
        node = snap.cluster.gpus[g[0]].node
        k, gpu_s = len(g), len(g) * est.run
        best = narrowest.get(node)
        if best is None or k < best[0] or (k == best[0] and gpu_s < best[1]):
            narrowest[node] = (k, gpu_s)
    out = []
    for q in quick:
        _, g, est = q
        k0, gpu_s0 = narrowest[snap.cluster.gpus[g[0]].node]
        if len(g) == k0 or len(g) * est.run <= gpu_s0 * (1 + slack):
            out.append(q)
    return out


def _prefilter(
    quick: list[tuple[float, tuple[int, ...], StageCost]], snap: Snapshot, keep: int
) -> list[tuple[tuple[int, ...], StageCost]]:
    """The ``keep`` earliest-finishing groups, plus the earliest on ``keep`` other nodes.

    Future terms are dearer than an estimate; they are computed only for groups that could
    win: the fastest few, and the best of a few more nodes so that a copy on a new node
    stays in reach (bounded, so a 64-node cluster costs what an 8-node one does).
    """
    quick.sort(key=lambda q: (q[0], q[1]))
    chosen = [(g, est) for _, g, est in quick[:keep]]
    nodes = {snap.cluster.gpus[g[0]].node for g, _ in chosen}
    extra = 0
    for _, g, est in quick[keep:]:
        if extra >= keep:
            break
        node = snap.cluster.gpus[g[0]].node
        if node not in nodes:
            nodes.add(node)
            chosen.append((g, est))
            extra += 1
    return chosen


def _fetch_holds(
    snap: Snapshot, cost: CostModel, scored: dict[int, list[Scored]], cfg: FateConfig
) -> tuple[dict[int, list[Scored]], dict[int, float]]:
    """Drop options whose GPUs would sit idle waiting for a fetch; hold stages left with none.

    On a node that is still fetching a model from the remote store (about 110 s for
    70B weights), a second stage of that model can only wait for the same bytes. Placed
    there now, it holds its GPUs idle until the fetch is through, and it finishes no
    sooner than if it started just before the fetch ends. So options that would idle
    more than ``cfg.fetch_hold_s`` are dropped. When the best option (by score) was one,
    the others are kept only if they finish within ``1 + cfg.fetch_slack`` of it (a
    fetch of its own on another node gives the model a copy that later stages use); a
    stage left with none is held (uid -> when it would start without idling) and
    planned again then, and its GPUs serve other stages meanwhile.
    """
    assert cfg.fetch_hold_s is not None
    kept: dict[int, list[Scored]] = {}
    held: dict[int, float] = {}
    stages = snap.graph.stages
    for uid, options in scored.items():
        model = stages[uid].model
        idle_until: dict[tuple[int, ...], float] = {}
        for o in options:
            if o.cost.load > 0.0:
                start = snap.now + o.cost.wait
                idle = cost.fetch_wait(model, o.gpus, snap, start)
                if idle > cfg.fetch_hold_s:
                    idle_until[o.gpus] = start + idle
        rest = [o for o in options if o.gpus not in idle_until]
        best = min(options, key=lambda o: (o.score, o.gpus))
        if best.gpus in idle_until:
            rest = [o for o in rest if o.finish <= best.finish * (1.0 + cfg.fetch_slack)]
        if rest:
            kept[uid] = rest
        else:
            held[uid] = idle_until[best.gpus]
    return kept, held


def _defer_cost(options: list[Scored]) -> float:
    best = min(options, key=lambda o: o.score)
    return best.score + max(best.cost.run, MIN_DEFER_S)


def _node_busy(snap: Snapshot, node: int) -> float:
    """Fraction of a node's GPUs running a stage or holding a queue."""
    gpus = snap.cluster.node_gpus[node]
    busy = sum(1 for g in gpus if snap.gpus[g].running is not None or snap.gpus[g].pending)
    return busy / len(gpus)


def _work_in_flight(snap: Snapshot) -> bool:
    return any(st.running is not None or st.pending for st in snap.gpus)


def _record(options: list[Scored], i: int) -> DecisionRecord:
    chosen = options[i]
    others = sorted((o for j, o in enumerate(options) if j != i), key=lambda o: o.score)
    runner = others[0] if others else None
    return DecisionRecord(
        cost=chosen.cost,
        score=chosen.score,
        future_terms=tuple(zip(TERMS, chosen.terms, strict=True)),
        runner_up=runner.gpus if runner else None,
        runner_up_score=runner.score if runner else None,
        runner_up_cost=runner.cost if runner else None,
        runner_up_terms=tuple(zip(TERMS, runner.terms, strict=True)) if runner else (),
    )
