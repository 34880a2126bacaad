"""State-conditional cost of running a stage on a GPU set, as a breakdown.

``time(s, G | state) = wait(G) + load + input + prefill + decode``:

- **wait**: until every GPU of G has drained its queue (estimated ``busy_until``).
- **load**: 0 when the model is resident on every GPU of G for exactly this shard group
  when the stage starts: loaded now or by a stage queued earlier on G, and not evicted
  by a load queued in between (`Snapshot.resident_after_queue`). Otherwise, from the fastest tier
  that has it: node host page cache -> each GPU reads ``weights / k`` over its own PCIe
  link (``host_to_gpu_gbps``); node local disk -> the node reads all ``weights`` once at
  ``local_disk_gbps``; else the remote store at ``min(remote_store_gbps,
  node.network_gbps)``. Figures follow ServerlessLLM (OSDI'24) and the H200/H100
  measurements in ``shared/calibration/README.md``. A model with ``load_gbps`` in the
  catalog (a file dequantised on load, say) loads no faster than each GPU converts its
  ``weights / k`` at that rate, whatever the tier. A node's cache and disk hold a model
  only once the load that brought it there is through: a load of the same model on the
  node meanwhile ends no sooner than that one (`NodeState.fills`), since it waits for
  the same bytes.
  When the stage needs a new pod first (every stage with a pod per stage; the first on
  a GPU set without a live worker pod), the pod's start (``cluster.yaml``
  ``pod_start_s``) is part of the load, and the pod starts empty: the model loads cold
  and no prefix is reused (see `Hosting`).
- **input**: for each parent, its output bytes over the link between where it ran and G:
  0 when they share a GPU, NVLink (or host PCIe without NVLink) inside a node, the slower
  NIC of the two nodes across nodes.
- **prefill**: ``(input_tokens - reused) / prefill_rate``, where ``reused`` is the
  prefix's tokens when the KV of ``(model, prefix id)`` is warm on every GPU of G.
- **decode**: ``output_tokens / decode_rate``.

Virtual CPU devices on a node with ``cpu_cores`` share those cores: load, prefill and
decode are scaled by `contention` (n devices at work on c cores: n / c, at least 1, the
other devices counted for the part of the stage they overlap).

Rates: the catalog's single-H100 rate, times the GPU type's ``relative_speed`` (unless the
catalog gives a per-type figure), times ``k * shard_efficiency(k)`` for k shards, times an
optional online correction factor per (model, GPU type). ``shard_efficiency(k) =
0.9 ** log2(k)``: tensor parallelism loses about a tenth of per-GPU throughput to
all-reduce at each doubling (vLLM's published Llama-70B TP scaling is of this order).

Memory: ``(weights + kv(tokens)) / k`` must fit each GPU's usable memory and k must be
an allowed degree (`shard_degrees`), else G is infeasible and the estimator returns None.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.graph import StageInfo
from airflow_fate.domain.models import ModelCatalog
from airflow_fate.domain.plan import StageCost
from airflow_fate.domain.shards import memory_per_gpu_gib, shard_degrees
from airflow_fate.state.cluster_state import GpuState, Snapshot
from airflow_fate.state.hosting import Hosting

GB = 1e9
GIB_IN_GB = 1024**3 / GB

LoadTier = Literal["host-cache", "disk", "remote"]
"""Where a load reads the weights from: the node's page cache, its disk, the store."""


def shard_efficiency(k: int) -> float:
    """Per-GPU throughput kept at tensor-parallel degree k (1.0 at k=1, 0.9 at k=2...)."""
    return float(0.9 ** math.log2(k)) if k > 1 else 1.0


@dataclass(frozen=True, slots=True)
class Rates:
    """Aggregate token rates of a model on k GPUs of one type."""

    prefill: float
    decode: float


class CostModel:
    """Estimates stage costs from a snapshot. Pure: it never changes state.

    Args:
        cluster: the inventory.
        catalog: the model catalog.
        correction: optional multiplicative runtime factors per ``(model, gpu_type)``
            learned from observed runs (>1 means slower than the profile).
        load_correction: the same for model load times (`cold_load_time`).
    """

    def __init__(
        self,
        cluster: Cluster,
        catalog: ModelCatalog,
        correction: Mapping[tuple[str, str], float] | None = None,
        load_correction: Mapping[tuple[str, str], float] | None = None,
    ) -> None:
        self.cluster = cluster
        self.catalog = catalog
        self.correction = dict(correction or {})
        self.load_correction = dict(load_correction or {})
        self._node_of = tuple(ref.node for ref in cluster.gpus)
        self._rates: dict[tuple[str, str, int], Rates] = {}
        ic = cluster.interconnect
        self._host_gbps = ic.host_to_gpu_gbps
        self._disk_gbps = ic.local_disk_gbps
        self._remote_gbps = [min(ic.remote_store_gbps, n.network_gbps) for n in cluster.nodes]
        self._intra_gbps = [
            ic.nvlink_gbps if n.nvlink else ic.host_to_gpu_gbps for n in cluster.nodes
        ]
        self._mean_inverse_gbps: float | None = None
        self._by_node: dict[tuple[str, int, int, int, int | None], tuple[tuple[int, ...], ...]] = {}
        self._usable = [cluster.gpu_type_of_node(i).usable_gib for i in range(len(cluster.nodes))]
        self._cores = [n.cpu_cores for n in cluster.nodes]
        self._load_gbps: dict[tuple[str, str], float] = {}
        for name, model in catalog.models.items():
            for gpu_type in cluster.gpu_types:
                override = model.per_gpu_type.get(gpu_type)
                gbps = override.load_gbps if override and override.load_gbps else model.load_gbps
                if gbps:
                    self._load_gbps[(name, gpu_type)] = gbps

    # -- static figures --------------------------------------------------------------

    def rates(self, model_name: str, gpu_type: str, k: int) -> Rates:
        key = (model_name, gpu_type, k)
        cached = self._rates.get(key)
        if cached is not None:
            return cached
        model = self.catalog.models[model_name]
        override = model.per_gpu_type.get(gpu_type)
        if override is not None:
            prefill, decode = override.prefill_tokens_per_s, override.decode_tokens_per_s
        else:
            speed = self.cluster.gpu_types[gpu_type].relative_speed
            prefill = model.prefill_tokens_per_s * speed
            decode = model.decode_tokens_per_s * speed
        scale = k * shard_efficiency(k) / self.correction.get((model_name, gpu_type), 1.0)
        rates = Rates(prefill=prefill * scale, decode=decode * scale)
        self._rates[key] = rates
        return rates

    def fits(self, stage: StageInfo, node: int, k: int) -> bool:
        """Whether stage's shard of weights plus KV fits one GPU of ``node`` at degree k."""
        model = self.catalog.models[stage.model]
        return memory_per_gpu_gib(model, stage.tokens, k) <= self._usable[node]

    def degrees(self, stage: StageInfo, node: int) -> tuple[int, ...]:
        """Shard degrees of ``stage`` allowed on ``node`` that fit memory."""
        return self.degrees_by_node(stage)[node]

    def degrees_by_node(
        self, stage: StageInfo, cap: int | None = None
    ) -> tuple[tuple[int, ...], ...]:
        """Per node (by index), the shard degrees of ``stage`` that fit memory there.

        ``cap`` bounds optional widening only: where no fitting degree is within it, the
        smallest fitting degree remains (so a stage keeps every node it fits). Planners
        ask this for every stage they look at; one memoised row per stage shape replaces a
        lookup per node.
        """
        key = (stage.model, stage.tokens, stage.min_shards, stage.max_shards, cap)
        hit = self._by_node.get(key)
        if hit is None:
            if cap is None:
                rows = [
                    tuple(
                        k
                        for k in shard_degrees(stage.min_shards, stage.max_shards, n.gpu_count)
                        if self.fits(stage, i, k)
                    )
                    for i, n in enumerate(self.cluster.nodes)
                ]
            else:
                rows = [
                    tuple(k for k in ks if k <= cap) or ks[:1] for ks in self.degrees_by_node(stage)
                ]
            hit = self._by_node[key] = tuple(rows)
        return hit

    def compute_time(
        self, stage: StageInfo, node: int, k: int, reused_tokens: int
    ) -> tuple[float, float]:
        """(prefill, decode) seconds on k GPUs of ``node``'s type."""
        r = self.rates(stage.model, self.cluster.nodes[node].gpu_type, k)
        prefill = (stage.input_tokens - reused_tokens) / r.prefill
        decode = stage.output_tokens / r.decode if stage.output_tokens and r.decode > 0 else 0.0
        return prefill, decode

    def warm_time(self, stage: StageInfo, node: int, k: int) -> float:
        """Seconds with model resident, inputs local and prefix warm (lower-bound use)."""
        prefill, decode = self.compute_time(stage, node, k, stage.prefix_tokens)
        return prefill + decode

    # -- state-conditional parts -----------------------------------------------------

    def load_time(
        self,
        stage: StageInfo,
        gpus: tuple[int, ...],
        snap: Snapshot,
        start: float | None = None,
    ) -> float:
        """Seconds to make stage's model resident on ``gpus`` (0 when already warm).

        Includes the start of the pod the stage needs first, if any. ``start``: when the
        stage starts (default ``snap.now``); see `cold_load_time`.
        """
        hosting = snap.hosting
        if not hosting.keeps_state:  # every stage's pod loads its own copy
            return hosting.pod_start_s + self.cold_load_time(stage.model, gpus, snap, start)
        if not self.pod_ready(stage, gpus, snap):
            return hosting.pod_start_s + self.cold_load_time(stage.model, gpus, snap, start)
        before = stage.uid if stage.uid in snap.placement else None
        for g in gpus:
            if not any(
                m == stage.model and grp == gpus
                for m, grp, _ in snap.resident_after_queue(g, before)
            ):
                return self.cold_load_time(stage.model, gpus, snap, start)
        return 0.0

    def pod_ready(self, stage: StageInfo, gpus: tuple[int, ...], snap: Snapshot) -> bool:
        """Whether, when ``stage`` starts, a live worker (pod or local process) will hold
        exactly ``gpus``.

        Always True with a pod per stage (priced in `load_time` directly). A stage queued
        on ``gpus`` ahead of this one starts the worker if needed; one queued for another
        set replaces it.
        """
        hosting = snap.hosting
        if not hosting.set_workers:
            return True
        queued = stage.uid in snap.placement
        for g in gpus:
            if not _pod_will_serve(snap.gpus[g], gpus, stage.uid, queued, snap.now, hosting):
                return False
        return True

    def cold_load_time(
        self, model_name: str, gpus: tuple[int, ...], snap: Snapshot, start: float | None = None
    ) -> float:
        """Seconds to load ``model_name`` onto ``gpus`` from the best tier of their node.

        A load that starts at ``start`` (default ``snap.now``) while a fetch is still
        bringing the model to the node ends no sooner than that fetch.
        """
        tier_s = self._tier_load_time(model_name, gpus, snap)
        return max(tier_s, self._fill_end(model_name, gpus, snap) - _at(start, snap))

    def fetch_wait(
        self, model_name: str, gpus: tuple[int, ...], snap: Snapshot, start: float | None = None
    ) -> float:
        """Seconds a load starting at ``start`` would hold ``gpus`` idle beyond its own
        read time, waiting for a fetch that is still bringing the model to their node."""
        tier_s = self._tier_load_time(model_name, gpus, snap)
        return max(0.0, self._fill_end(model_name, gpus, snap) - _at(start, snap) - tier_s)

    def first_load_time(self, model_name: str, node: int) -> float:
        """Seconds of the first load of ``model_name`` on ``node`` in a cold cluster: from
        the node's disk if its weights were pre-pulled there, else the remote store.

        No longer than any first load there (the lower bound relies on it): the
        conversion bound is taken at the widest shard group the node has.
        """
        spec = self.cluster.nodes[node]
        tier: LoadTier = "disk" if model_name in spec.models_on_disk else "remote"
        return self.load_from(model_name, node, tier, spec.gpu_count)

    def load_from(self, model_name: str, node: int, tier: LoadTier, k: int = 1) -> float:
        """Seconds k GPUs of ``node`` take to load ``model_name`` from ``tier``, as if the
        weights were all there: the read at the tier's bandwidth (the host cache feeds
        each GPU its shard; disk and remote reads are the node's), or the GPUs' conversion
        of their shards at the model's ``load_gbps`` where that is slower."""
        read_gb = self._read_gb(model_name, node)
        if tier == "host-cache":
            read_s = read_gb / k / self._host_gbps
        elif tier == "disk":
            read_s = read_gb / self._disk_gbps
        else:
            read_s = read_gb / self._remote_gbps[node]
        gbps = self._load_gbps.get((model_name, self.cluster.nodes[node].gpu_type))
        return max(read_s, read_gb / k / gbps) if gbps else read_s

    def _read_gb(self, model_name: str, node: int) -> float:
        """Gigabytes a load of the model reads on ``node``, scaled by its load correction."""
        weights_gb = self.catalog.models[model_name].weights_gib * GIB_IN_GB
        gpu_type = self.cluster.nodes[node].gpu_type
        return self.load_correction.get((model_name, gpu_type), 1.0) * weights_gb

    def _tier_load_time(self, model_name: str, gpus: tuple[int, ...], snap: Snapshot) -> float:
        """Seconds to load the weights from the node's best tier, as if it were complete."""
        node = self._node_of[gpus[0]]
        ns = snap.nodes[node]
        tier: LoadTier = (
            "host-cache" if ns.cached(model_name) else "disk" if model_name in ns.disk else "remote"
        )
        return self.load_from(model_name, node, tier, len(gpus))

    def _fill_end(self, model_name: str, gpus: tuple[int, ...], snap: Snapshot) -> float:
        """When the fetch bringing ``model_name`` into the node's cache ends (-inf: none).

        The cache and disk hold a model only once the load that filled them is through.
        """
        node = self._node_of[gpus[0]]
        ns = snap.nodes[node]
        fill = ns.fills.get(model_name)
        if fill is None or not (ns.cached(model_name) or model_name in ns.disk):
            return -math.inf
        began, from_disk = fill
        gbps = self._disk_gbps if from_disk else self._remote_gbps[node]
        return began + self._read_gb(model_name, node) / gbps

    def transfer_time(self, nbytes: float, src: tuple[int, ...], dst: tuple[int, ...]) -> float:
        """Seconds to move ``nbytes`` from where ``src`` ran to GPU set ``dst``."""
        if nbytes <= 0:
            return 0.0
        for g in dst:
            if g in src:
                return 0.0
        a, b = self._node_of[src[0]], self._node_of[dst[0]]
        if a == b:
            return nbytes / GB / self._intra_gbps[a]
        nodes = self.cluster.nodes
        return nbytes / GB / min(nodes[a].network_gbps, nodes[b].network_gbps)

    def mean_transfer_time(self, nbytes: float) -> float:
        """Expected seconds to move ``nbytes`` between two GPUs drawn uniformly (same incl.)."""
        if self._mean_inverse_gbps is None:
            n = len(self._node_of)
            total = 0.0
            for a in range(n):
                for b in range(n):
                    if a != b:
                        total += self.transfer_time(GB, (a,), (b,))
            self._mean_inverse_gbps = total / (n * n)
        return nbytes / GB * self._mean_inverse_gbps

    def input_time(self, stage: StageInfo, gpus: tuple[int, ...], snap: Snapshot) -> float:
        total = 0.0
        stages = snap.graph.stages
        for p in stage.parents:
            src = snap.placement.get(p)
            if src is not None:
                total += self.transfer_time(stages[p].output_bytes, src, gpus)
        return total

    def reused_tokens(self, stage: StageInfo, gpus: tuple[int, ...], snap: Snapshot) -> int:
        if stage.prefix_id is None or not snap.gpus_keep_state:
            return 0
        if not self.pod_ready(stage, gpus, snap):
            return 0
        key = (stage.model, stage.prefix_id)
        states = snap.gpus
        queued = stage.uid in snap.placement
        for g in gpus:
            if not _has_prefix(states[g], key, stage.uid, queued):
                return 0
        return stage.prefix_tokens

    def finish_floor(self, stage: StageInfo, gpus: tuple[int, ...], snap: Snapshot) -> float:
        """A cheap lower bound of ``estimate(...).total``: wait plus warm compute."""
        node = self._node_of[gpus[0]]
        prefill, decode = self.compute_time(stage, node, len(gpus), stage.prefix_tokens)
        return snap.free_at(gpus) - snap.now + prefill + decode

    def run_cost(
        self,
        stage: StageInfo,
        gpus: tuple[int, ...],
        snap: Snapshot,
        start: float | None = None,
    ) -> StageCost:
        """Cost once the GPUs are free (wait = 0); the simulator's "actual" before noise.

        ``start``: when the stage starts (default ``snap.now``, as the simulator prices a
        stage that starts now); a later start waits less for a fetch in flight.
        """
        node = self._node_of[gpus[0]]
        prefill, decode = self.compute_time(
            stage, node, len(gpus), self.reused_tokens(stage, gpus, snap)
        )
        load = self.load_time(stage, gpus, snap, start)
        if self._cores[node] is not None:
            slow = self.contention(gpus, snap, start, load + prefill + decode)
            load, prefill, decode = load * slow, prefill * slow, decode * slow
        return StageCost(
            wait=0.0,
            load=load,
            input=self.input_time(stage, gpus, snap),
            prefill=prefill,
            decode=decode,
        )

    def contention(
        self,
        gpus: tuple[int, ...],
        snap: Snapshot,
        start: float | None = None,
        duration_s: float = 0.0,
    ) -> float:
        """How many times slower ``gpus`` work for sharing CPU cores, over a stage that
        starts at ``start`` (default ``snap.now``) and would take ``duration_s`` alone:
        1 unless their node gives ``cpu_cores`` (virtual CPU devices).

        There, n devices at work on c cores each work at c / n of a core. The stage's own
        devices count fully; every other device of the node counts for the part of the
        stage it is still busy (its queue's estimated end), all of it when
        ``duration_s`` is 0. The stage's load, prefill and decode all run on the cores.
        """
        node = self._node_of[gpus[0]]
        cores = self._cores[node]
        if cores is None:
            return 1.0
        at = _at(start, snap)
        busy = float(len(gpus))
        for g in self.cluster.node_gpus[node]:
            left = snap.gpus[g].busy_until - at
            if g not in gpus and left > 0:
                busy += min(1.0, left / duration_s) if duration_s > 0 else 1.0
        return max(1.0, busy / cores)

    def estimate(self, stage: StageInfo, gpus: tuple[int, ...], snap: Snapshot) -> StageCost | None:
        """Predicted cost from ``snap.now``, or None if the stage does not fit ``gpus``."""
        node = self._node_of[gpus[0]]
        if len(gpus) not in self.degrees(stage, node):
            return None
        start = snap.free_at(gpus)
        run = self.run_cost(stage, gpus, snap, start)
        return StageCost(
            wait=start - snap.now,
            load=run.load,
            input=run.input,
            prefill=run.prefill,
            decode=run.decode,
        )


def _pod_will_serve(
    st: GpuState, group: tuple[int, ...], uid: int, queued: bool, now: float, hosting: Hosting
) -> bool:
    """Whether this GPU's pod will be one for exactly ``group`` when stage ``uid`` starts.

    The pod there now, unless a stage queued ahead of ``uid`` (every queued stage, when
    ``uid`` is not queued) runs on another set and so replaces it.
    """
    ahead = None  # the last stage queued ahead of uid: it leaves its own set's pod
    if not queued:
        ahead = st.pending[-1] if st.pending else None
    else:
        for p in st.pending:
            if p.stage == uid:
                break
            ahead = p
    if ahead is None:
        return st.pod_alive(group, now, hosting.worker_idle_s)
    return ahead.group == group


def _has_prefix(st: GpuState, key: tuple[str, str], uid: int, queued: bool) -> bool:
    for k, _ in st.prefix_kv:
        if k == key:
            return True
    if not queued:
        return key in st.pending_prefixes
    for p in st.pending:
        if p.stage == uid:
            break
        if p.prefix == key:
            return True
    return False


def _at(start: float | None, snap: Snapshot) -> float:
    return snap.now if start is None else start
