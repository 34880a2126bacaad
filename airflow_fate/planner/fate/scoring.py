"""FATE's score of a candidate: immediate finish plus the state it leaves behind.

For stage s on GPU group G (k GPUs of node n) at time t, with look-ahead ``L`` (see
`lookahead`), every term in seconds:

- **finish**: the state-conditional estimate (wait + load + input + prefill + decode).
- **residency credit**: for each stage c in L(s) with c.model == s.model that can run on
  G (``k`` is an allowed degree for c on n): the load c would otherwise pay, i.e. 0 if
  some other group that c could use already holds the model, else the cheapest cold load
  of c's model on any node. Choosing a GPU that already holds the model keeps a copy
  where the children can follow; a cold copy elsewhere adds none that was missing.
- **locality credit**: for each child c that fits n: the cross-node transfer of s's
  output that c avoids by following s onto n.
- **prefix credit**: for each stage t in L(s) or the frontier sharing (model, prefix id)
  that can run on G: its prefix prefill seconds on n, unless the prefix KV is already
  warm on a GPU outside G.
- **eviction debit**: models that loading s.model onto G evicts (LRU until it fits) and
  that look-ahead stages need: their reload time from the node's host cache (or the
  remote store if it no longer holds them), divided by 1 + the other copies left.
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
from airflow_fate.planner.candidates import aligned_blocks
from airflow_fate.planner.fate.config import FateConfig
from airflow_fate.planner.fate.lookahead import Lookahead
from airflow_fate.state.cluster_state import Snapshot

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
        self._idle_blocks: dict[int, list[tuple[int, ...]]] = {}

    # -- helpers ---------------------------------------------------------------------

    def _can_use(self, stage: StageInfo, node: int, k: int) -> bool:
        return k in self.cost.degrees(stage, node, self.cfg.max_shards)

    def best_cold_load(self, stage: StageInfo) -> float:
        """Cheapest cold load of the stage's model over the nodes it fits."""
        hit = self._best_cold.get(stage.model)
        if hit is None:
            hit = float("inf")
            for n, node_gpus in enumerate(self.snap.cluster.node_gpus):
                ks = self.cost.degrees(stage, n, self.cfg.max_shards)
                if ks:
                    t = self.cost.cold_load_time(stage.model, node_gpus[: ks[0]], self.snap)
                    hit = min(hit, t)
            self._best_cold[stage.model] = hit
        return hit

    def _held_elsewhere(self, stage: StageInfo, exclude: tuple[int, ...]) -> bool:
        for group in self.snap.model_groups.get(stage.model, ()):
            if group != exclude and self._can_use(stage, self._node_of[group[0]], len(group)):
                return True
        return False

    # -- terms -----------------------------------------------------------------------

    def residency(self, s: StageInfo, gpus: tuple[int, ...]) -> float:
        node, k = self._node_of[gpus[0]], len(gpus)
        total = 0.0
        stages = self.snap.graph.stages
        for c, disc in self.look.below.get(s.uid, ()):
            child = stages[c]
            if child.model != s.model or not self._can_use(child, node, k):
                continue
            if not self._held_elsewhere(child, gpus):
                total += disc * self.best_cold_load(child)
        return total

    def locality(self, s: StageInfo, gpus: tuple[int, ...]) -> float:
        if s.output_bytes <= 0:
            return 0.0
        node = self._node_of[gpus[0]]
        net = self.snap.cluster.nodes[node].network_gbps
        total = 0.0
        for c in s.children:
            if self.cost.degrees(self.snap.graph.stages[c], node, self.cfg.max_shards):
                total += s.output_bytes / 1e9 / net
        return total

    def prefix(self, s: StageInfo, gpus: tuple[int, ...]) -> float:
        if not s.prefix_id:
            return 0.0
        key = (s.model, s.prefix_id)
        warm = self.snap.prefix_gpus.get(key, frozenset())
        if any(g not in gpus for g in warm):
            return 0.0
        node, k = self._node_of[gpus[0]], len(gpus)
        total = 0.0
        stages = self.snap.graph.stages
        for t, disc in self.look.by_prefix.get(key, ()):
            other = stages[t]
            if t == s.uid or not self._can_use(other, node, k):
                continue
            rate = self.cost.rates(other.model, self.snap.cluster.nodes[node].gpu_type, k)
            total += disc * other.prefix_tokens / rate.prefill
        return total

    def eviction(self, s: StageInfo, gpus: tuple[int, ...]) -> float:
        model = self.snap.catalog.models[s.model]
        k = len(gpus)
        need = (model.weights_gib + model.kv_bytes_per_token * s.tokens / GIB) / k
        usable = self.snap.cluster.gpu_type_of_node(self._node_of[gpus[0]]).usable_gib
        total = 0.0
        for g in gpus:
            resident = [r for r in self.snap.gpus[g].resident if r[0] != s.model]
            used = sum(r[2] for r in resident)
            for m, group, gib in resident:
                if used + need <= usable:
                    break
                used -= gib
                demand = self.look.by_model.get(m)
                if not demand:
                    continue
                copies = sum(1 for grp in self.snap.model_groups.get(m, ()) if grp != group)
                reload = self.cost.cold_load_time(m, group, self.snap)
                total += reload * sum(d for _, d in demand) / (1 + copies)
        return total

    def reachability(self, s: StageInfo, gpus: tuple[int, ...]) -> float:
        if not self.look.large or s.uid in {u for u, _, _ in self.look.large}:
            return 0.0
        node = self._node_of[gpus[0]]
        total = 0.0
        for u, disc, k_u in self.look.large:
            stage_u = self.snap.graph.stages[u]
            if not self._can_use(stage_u, node, k_u):
                continue
            blocks = self._idle_blocks_of(k_u)
            broken = [b for b in blocks if self._node_of[b[0]] == node and set(b) & set(gpus)]
            if not broken:
                continue
            demand = sum(1 for _, _, k in self.look.large if k == k_u)
            if len(blocks) - len(broken) < demand:
                est = self.cost.run_cost(s, gpus, self.snap)
                total += disc * est.run
        return total

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

    def _idle(self, g: int) -> bool:
        st = self.snap.gpus[g]
        return st.running is None and not st.pending and st.busy_until <= self.snap.now

    # -- score -----------------------------------------------------------------------

    def score(self, s: StageInfo, gpus: tuple[int, ...]) -> Scored | None:
        est = self.cost.estimate(s, gpus, self.snap)
        if est is None:
            return None
        cfg = self.cfg
        if not self.future:
            return Scored(gpus, est, (0.0, 0.0, 0.0, 0.0, 0.0), est.total)
        terms = (
            self.residency(s, gpus) if cfg.residency else 0.0,
            self.locality(s, gpus) if cfg.locality else 0.0,
            self.prefix(s, gpus) if cfg.prefix else 0.0,
            self.eviction(s, gpus) if cfg.eviction else 0.0,
            self.reachability(s, gpus) if cfg.reachability else 0.0,
        )
        credits = terms[0] + terms[1] + terms[2]
        debits = terms[3] + terms[4]
        return Scored(gpus, est, terms, est.total - cfg.alpha * credits + cfg.beta * debits)
