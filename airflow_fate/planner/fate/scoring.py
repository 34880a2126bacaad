"""FATE's score of a candidate: immediate finish plus the state it leaves behind.

For stage s on GPU group G (k GPUs of node n) at time t, with look-ahead ``L`` (see
`lookahead`), every term in seconds:

- **finish**: the state-conditional estimate (wait + load + input + prefill + decode).
- **residency credit**: the waits and cold loads that the look-ahead stages needing
  s.model pay given the model's copies, before minus after this placement (`supply`):
  a cold group adds a copy (free when s ends) and relieves a congested model; the only
  warm copy kept busy longer delays the stages queued behind it (a negative credit).
- **locality credit**: for each child c that fits n: the cross-node transfer of s's
  output that c avoids by following s onto n.
- **prefix credit**: for each stage t in L(s) or the frontier sharing (model, prefix id)
  that can run on G: its prefix prefill seconds on n, unless the prefix KV is already
  warm on a GPU outside G.
- **eviction debit**: for each model that loading s.model onto G evicts (LRU until it
  fits, among what G holds once its queue has started), the extra waits and cold loads
  its look-ahead demand pays once that copy is gone (`supply`). Where G needs a worker
  of its own (a shard group on single-GPU workers, or the reverse), every model the
  replaced workers hold, on all their GPUs, is lost too.
- **reachability debit**: for each look-ahead stage u that needs a shard group of
  ``k_u >= 2`` GPUs: if G breaks an idle aligned block of ``k_u`` GPUs on a node that
  fits u and the idle blocks left are fewer than such stages, u is delayed by about
  s's run on G.

Credits use ``discount`` of each stage (1 for children and frontier stages, less for
deeper ones).
``score = finish - alpha * credits + beta * debits``. Each term is kept for the decision
record shown to users ("why here").
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.graph import StageInfo
from airflow_fate.domain.models import GIB
from airflow_fate.domain.plan import StageCost
from airflow_fate.planner.candidates import aligned_blocks, capped_degrees
from airflow_fate.planner.fate.config import FateConfig
from airflow_fate.planner.fate.lookahead import Lookahead
from airflow_fate.planner.fate.supply import (
    MAX_DEMAND,
    Copy,
    Need,
    demand_cost,
    projected_needs,
)
from airflow_fate.state.cluster_state import Resident, Snapshot

TERMS = ("residency", "locality", "prefix", "eviction", "reachability")


@dataclass(frozen=True, slots=True)
class Scored:
    """One candidate group of one stage, scored."""

    gpus: tuple[int, ...]
    cost: StageCost
    terms: tuple[float, float, float, float, float]
    score: float

    @property
    def finish(self) -> float:
        return self.cost.total


class Scorer:
    """Scores candidates on one snapshot; caches per-epoch facts."""

    def __init__(self, snap: Snapshot, cost: CostModel, look: Lookahead, cfg: FateConfig) -> None:
        self.snap = snap
        self.cost = cost
        self.look = look
        self.cfg = cfg
        self.future = cfg.horizon > 0
        self._node_of = tuple(ref.node for ref in snap.cluster.gpus)
        self._best_cold: dict[str, float] = {}
        self._need_cache: dict[tuple[str, int | None], list[Need]] = {}
        self._all_need_cache: dict[str, list[Need]] = {}
        self._warm_cache: dict[tuple[str, int, int, int], float] = {}
        self._copy_cache: dict[str, list[Copy]] = {}
        self._base_cache: dict[tuple[str, int | None], float] = {}
        self._loss_cache: dict[tuple[str, tuple[int, ...]], float] = {}
        self._others_cache: dict[tuple[int, str], tuple[Resident, float]] = {}
        self._prefix_cache: dict[tuple[tuple[str, str], int, int], dict[int, float]] = {}
        self._large_cache: dict[int, list[tuple[float, int]]] = {}
        self._large_demand: dict[int, int] = {}
        for _, _, k_u in look.large:
            self._large_demand[k_u] = self._large_demand.get(k_u, 0) + 1
        self._large_uids = {u for u, _, _ in look.large}

        self._idle_blocks: dict[int, list[tuple[int, ...]]] = {}
        self._idle_blocks_by_node: dict[int, dict[int, list[tuple[int, ...]]]] = {}

    # -- helpers ---------------------------------------------------------------------

    def _can_use(self, stage: StageInfo, node: int, k: int) -> bool:
        return k in capped_degrees(stage, self.cost, node, self.cfg.max_shards)

    def cold_option(self, stage: StageInfo) -> float:
        """Seconds until the stage could run without a copy: GPUs free plus a cold load.

        The minimum over nodes that fit it of (when its smallest group frees there) + (load
        from that node's best tier). A copy is only worth waiting for if it beats this.
        """
        hit = self._best_cold.get(stage.model)
        if hit is None:
            hit = float("inf")
            now = self.snap.now
            for n, ks in enumerate(self.cost.degrees_by_node(stage, self.cfg.max_shards)):
                if ks:
                    group = tuple(sorted(self.snap.wait_order[n][: ks[0]]))
                    wait = self.snap.free_at(group) - now
                    hit = min(hit, wait + self.cost.cold_load_time(stage.model, group, self.snap))
            self._best_cold[stage.model] = hit
        return hit

    # -- terms -----------------------------------------------------------------------

    def _needs(self, model: str, exclude: int | None) -> list[Need]:
        """Demand for ``model`` (without stage ``exclude``), by readiness, truncated."""
        key = (model, exclude)
        hit = self._need_cache.get(key)
        if hit is None:
            full = self._all_needs(model)
            hit = [n for n in full[: MAX_DEMAND + 1] if n.stage != exclude][:MAX_DEMAND]
            self._need_cache[key] = hit
        return hit

    def _all_needs(self, model: str) -> list[Need]:
        """Look-ahead stages now (most certain first), then projected arrivals."""
        hit = self._all_need_cache.get(model)
        if hit is None:
            stages = self.snap.graph.stages
            now = self.snap.now
            rows = sorted(
                ((-d, u) for u, d in self.look.by_model.get(model, ())),
            )[: MAX_DEMAND + 1]
            hit = [
                Need(now, -neg, self.fastest_warm(stages[u]), self.cold_option(stages[u]), u)
                for neg, u in rows
            ]
            hit.extend(self._projected(model))
            hit.sort(key=lambda n: (n.ready_at, -n.discount, n.stage))
            self._all_need_cache[model] = hit
        return hit

    def _projected(self, model: str) -> list[Need]:
        rate_run = self.look.projected.get(model)
        cfg = self.cfg
        if rate_run is None or cfg.projection_window_s <= 0:
            return []
        rate, run, example = rate_run
        return projected_needs(
            rate,
            run,
            self.cold_option(self.snap.graph.stages[example]),
            now=self.snap.now,
            window_s=cfg.projection_window_s,
            discount=cfg.projection_discount,
            keep_rate=cfg.projection_keeps_rate,
        )

    def fastest_warm(self, stage: StageInfo) -> float:
        key = (stage.model, stage.input_tokens, stage.output_tokens, stage.prefix_tokens)
        hit = self._warm_cache.get(key)
        if hit is None:
            hit = min(
                (
                    self.cost.warm_time(stage, n, ks[0])
                    for n, ks in enumerate(self.cost.degrees_by_node(stage, self.cfg.max_shards))
                    if ks
                ),
                default=0.0,
            )
            self._warm_cache[key] = hit
        return hit

    def _copies(self, model: str) -> list[Copy]:
        hit = self._copy_cache.get(model)
        if hit is None:
            hit = [
                Copy(group, self._node_of[group[0]], self.snap.free_at(group))
                for group in sorted(self.snap.model_groups(model))
            ]
            self._copy_cache[model] = hit
        return hit

    def residency(self, s: StageInfo, gpus: tuple[int, ...], finish: float) -> float:
        """Wait and cold loads saved (or imposed) on the model's look-ahead demand."""
        needs = self._needs(s.model, s.uid)
        if not needs:
            return 0.0
        now = self.snap.now
        copies = self._copies(s.model)
        before = self._base_cost(s.model, s.uid)
        taken = set(gpus)
        after = [c for c in copies if c.gpus != gpus and not taken.intersection(c.gpus)]
        after.append(Copy(gpus, self._node_of[gpus[0]], now + finish))
        return before - demand_cost(needs, after, now)

    def locality(self, s: StageInfo, gpus: tuple[int, ...]) -> float:
        if s.output_bytes <= 0:
            return 0.0
        node = self._node_of[gpus[0]]
        net = self.snap.cluster.nodes[node].network_gbps
        total = 0.0
        for c in s.children:
            if capped_degrees(self.snap.graph.stages[c], self.cost, node, self.cfg.max_shards):
                total += s.output_bytes / 1e9 / net
        return total

    def prefix(self, s: StageInfo, gpus: tuple[int, ...]) -> float:
        if not s.prefix_id:
            return 0.0
        key = (s.model, s.prefix_id)
        warm = self.snap.prefix_gpus(key)
        if any(g not in gpus for g in warm):
            return 0.0
        node, k = self._node_of[gpus[0]], len(gpus)
        cache_key = (key, node, k)
        per_stage = self._prefix_cache.get(cache_key)
        if per_stage is None:
            per_stage = {}
            stages = self.snap.graph.stages
            gpu_type = self.snap.cluster.nodes[node].gpu_type
            for t, disc in self.look.by_prefix.get(key, ()):
                other = stages[t]
                if self._can_use(other, node, k):
                    rate = self.cost.rates(other.model, gpu_type, k)
                    per_stage[t] = disc * other.prefix_tokens / rate.prefill
            self._prefix_cache[cache_key] = per_stage
        return sum(per_stage.values()) - per_stage.get(s.uid, 0.0)

    def eviction(self, s: StageInfo, gpus: tuple[int, ...]) -> float:
        """Extra waits and cold loads that the models this load evicts impose on demand."""
        model = self.snap.catalog.models[s.model]
        k = len(gpus)
        need = (model.weights_gib + model.kv_bytes_per_token * s.tokens / GIB) / k
        usable = self.snap.cluster.gpu_type_of_node(self._node_of[gpus[0]]).usable_gib
        lost: set[tuple[str, tuple[int, ...]]] = set()
        for h in self._replaced_worker_gpus(s, gpus):
            lost.update((m, group) for m, group, _ in self.snap.resident_after_queue(h))
        lost = {(m, group) for m, group in lost if m != s.model}
        for g in gpus:
            resident, used = self._others_resident(g, s.model)
            if used + need <= usable:
                continue
            for m, group, gib in resident:
                if used + need <= usable:
                    break
                used -= gib
                lost.add((m, group))
        total = 0.0
        now = self.snap.now
        for m, group in sorted(lost):
            key = (m, group)
            extra = self._loss_cache.get(key)
            if extra is None:
                needs = self._needs(m, None)
                left = [c for c in self._copies(m) if c.gpus != group]
                extra = demand_cost(needs, left, now) - self._base_cost(m, None) if needs else 0.0
                self._loss_cache[key] = extra
            total += extra
        return total

    def _others_resident(self, g: int, model: str) -> tuple[Resident, float]:
        """What GPU ``g`` holds after its queue besides ``model`` (LRU order), and its GiB:
        what a load of ``model`` there may evict (memoised per epoch)."""
        key = (g, model)
        hit = self._others_cache.get(key)
        if hit is None:
            resident = tuple(r for r in self.snap.resident_after_queue(g) if r[0] != model)
            hit = self._others_cache[key] = (resident, sum(r[2] for r in resident))
        return hit

    def _replaced_worker_gpus(self, s: StageInfo, gpus: tuple[int, ...]) -> set[int]:
        """GPUs whose worker gives way to one for exactly ``gpus`` when ``s`` starts (none
        when such a worker will be there): what those workers hold goes with them."""
        if not self.snap.hosting.set_workers or self.cost.pod_ready(s, gpus, self.snap):
            return set()
        replaced = set(gpus)
        for g in gpus:
            st = self.snap.gpus[g]
            replaced.update((st.pending[-1].group if st.pending else st.pod) or ())
        return replaced

    def _base_cost(self, model: str, exclude: int | None) -> float:
        """`demand_cost` of the model's demand on its current copies (memoised)."""
        key = (model, exclude)
        hit = self._base_cache.get(key)
        if hit is None:
            hit = demand_cost(self._needs(model, exclude), self._copies(model), self.snap.now)
            self._base_cache[key] = hit
        return hit

    def reachability(self, s: StageInfo, gpus: tuple[int, ...], run_s: float) -> float:
        if not self.look.large or s.uid in self._large_uids:
            return 0.0
        node = self._node_of[gpus[0]]
        taken = set(gpus)
        total = 0.0
        delays: dict[int, bool] = {}  # per degree: whether taking ``gpus`` delays its stages
        for disc, k_u in self._large_on(node):
            delayed = delays.get(k_u)
            if delayed is None:
                broken = sum(1 for b in self._idle_blocks_on(k_u, node) if taken.intersection(b))
                left = len(self._idle_blocks_of(k_u)) - broken
                delayed = delays[k_u] = bool(broken) and left < self._large_demand[k_u]
            if delayed:
                total += disc * run_s
        return total

    def _large_on(self, node: int) -> list[tuple[float, int]]:
        """(discount, degree) of the look-ahead stages needing a shard group on ``node``."""
        hit = self._large_cache.get(node)
        if hit is None:
            stages = self.snap.graph.stages
            hit = [
                (disc, k_u)
                for u, disc, k_u in self.look.large
                if self._can_use(stages[u], node, k_u)
            ]
            self._large_cache[node] = hit
        return hit

    def _idle_blocks_of(self, k: int) -> list[tuple[int, ...]]:
        hit = self._idle_blocks.get(k)
        if hit is None:
            hit = []
            for node_gpus in self.snap.cluster.node_gpus:
                for block in aligned_blocks(node_gpus, k):
                    if all(self._idle(g) for g in block):
                        hit.append(block)
            self._idle_blocks[k] = hit
        return hit

    def _idle_blocks_on(self, k: int, node: int) -> list[tuple[int, ...]]:
        """The idle aligned blocks of ``k`` GPUs on ``node`` (`_idle_blocks_of`, by node)."""
        by_node = self._idle_blocks_by_node.get(k)
        if by_node is None:
            by_node = self._idle_blocks_by_node[k] = {}
            for block in self._idle_blocks_of(k):
                by_node.setdefault(self._node_of[block[0]], []).append(block)
        return by_node.get(node, [])

    def _idle(self, g: int) -> bool:
        st = self.snap.gpus[g]
        return st.running is None and not st.pending and st.busy_until <= self.snap.now

    # -- score -----------------------------------------------------------------------

    def score(self, s: StageInfo, gpus: tuple[int, ...], est: StageCost) -> Scored:
        """Score ``gpus`` for ``s`` given its estimate there (`CostModel.estimate`)."""
        cfg = self.cfg
        if not self.future:
            return Scored(gpus, est, (0.0, 0.0, 0.0, 0.0, 0.0), est.total)
        # Residency, prefix and eviction value state left on the GPU; when GPUs keep
        # nothing after a stage (a pod per stage) there is no such state to value.
        kept = self.snap.gpus_keep_state
        terms = (
            self.residency(s, gpus, est.total) if cfg.residency and kept else 0.0,
            self.locality(s, gpus) if cfg.locality else 0.0,
            self.prefix(s, gpus) if cfg.prefix and kept else 0.0,
            self.eviction(s, gpus) if cfg.eviction and kept else 0.0,
            self.reachability(s, gpus, est.run) if cfg.reachability else 0.0,
        )
        credits = terms[0] + terms[1] + terms[2]
        debits = terms[3] + terms[4]
        return Scored(gpus, est, terms, est.total - cfg.alpha * credits + cfg.beta * debits)
