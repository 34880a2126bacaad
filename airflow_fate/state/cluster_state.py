"""`ClusterState`: what every GPU and node holds now, changed only by `apply(event)`.

Per GPU: when its queue drains (estimated), the stage running on it, stages reserved on it
but not started, resident models in LRU order within usable memory, prefix-KV entries
``(model, prefix id)`` in LRU order within the prefix-KV budget and, with worker pods, the
GPU set of the pod that holds it; what outlives a stage depends on the launcher
(`Hosting`). Per node: the host page cache of model weights (LRU within
``host_cache_gib``) and the models on local disk.
Per stage: where it was placed (its output lives there once it finishes). Per workflow:
attained GPU service.

GPU and node states are frozen and replaced on change, so `snapshot()` costs a tuple copy
and a `Snapshot` never changes under a planner (its lookup indexes are computed lazily,
once per snapshot). The placement, finished and service maps
are append-only or monotone and are exposed read-only; a planner only reads entries that
exist when it plans, so sharing them is safe and keeps snapshots O(#GPUs).

The simulator and the Airflow executor both drive this class, with the same events.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from types import MappingProxyType
from typing import Any, TypeVar

from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.graph import Renumbering, StageInfo, WorkloadGraph
from airflow_fate.domain.models import GIB, ModelCatalog
from airflow_fate.state.hosting import Hosting

Residency = tuple[str, tuple[int, ...]]
"""A resident model: its name and the GPU group it was loaded for (its shard layout)."""

Resident = tuple[tuple[str, tuple[int, ...], float], ...]
"""What a GPU holds, least recently used first: (model, GPU group, GiB on this GPU)."""

FoldStep = Callable[[Resident, "PendingStage"], Resident]
"""What a GPU holds after one queued stage loads its model onto it."""

PrefixKey = tuple[str, str]
"""Prefix-KV identity: ``(model, prefix id)``."""


@dataclass(frozen=True, slots=True)
class PendingStage:
    """A stage reserved on a GPU that has not started yet."""

    stage: int
    model: str
    group: tuple[int, ...]
    prefix: PrefixKey | None
    est_run_s: float


@dataclass(frozen=True, slots=True)
class GpuState:
    """One GPU. ``resident`` and ``prefix_kv`` are in LRU order, least recent first."""

    busy_until: float = 0.0
    running: int | None = None
    pending: tuple[PendingStage, ...] = ()
    pending_loads: Mapping[tuple[str, tuple[int, ...]], int] = field(default_factory=dict)
    """How many queued stages load each ``(model, group)``: look-ups skip the queue.
    Never mutated: replaced with an updated copy (few distinct keys, cheap)."""
    pending_prefixes: Mapping[PrefixKey, int] = field(default_factory=dict)
    pending_run_s: float = 0.0
    resident: tuple[tuple[str, tuple[int, ...], float], ...] = ()
    prefix_kv: tuple[tuple[PrefixKey, float], ...] = ()
    pod: tuple[int, ...] | None = None
    """The GPU set of the worker (pod or local process) on this GPU, else None."""
    idle_since: float = 0.0
    """When the last stage here finished (a worker pod expires after its idle limit)."""

    def pod_alive(self, group: tuple[int, ...], now: float, idle_s: float) -> bool:
        """Whether a worker pod for exactly ``group`` is here and has not idled out."""
        if self.pod != group:
            return False
        return self.running is not None or now - self.idle_since <= idle_s

    def holds(self, model: str, group: tuple[int, ...]) -> bool:
        """Whether ``model`` is loaded here for exactly this shard group."""
        return any(m == model and g == group for m, g, _ in self.resident)

    @property
    def weights_gib(self) -> float:
        return sum(gib for _, _, gib in self.resident)

    @property
    def resident_models(self) -> tuple[str, ...]:
        return tuple(m for m, _, _ in self.resident)


@dataclass(frozen=True, slots=True)
class NodeState:
    """One node: host page cache (LRU, least recent first) and models on local disk."""

    host_cache: tuple[tuple[str, float], ...] = ()
    disk: frozenset[str] = frozenset()
    fills: Mapping[str, tuple[float, bool]] = field(default_factory=dict)
    """Per model, when its last load here that did not find it in the host cache began,
    and whether it read local disk (else the remote store). The cache and disk hold the
    weights only once that load is through: another load of the model on this node ends
    no sooner (`CostModel.cold_load_time`), as a second reader of a file still being
    fetched waits for the fetch. The entry goes once a stage that loaded the model here
    since then has finished (`_fill_seen_through`): the fill is then known to be through."""

    def cached(self, model: str) -> bool:
        return any(m == model for m, _ in self.host_cache)


# ----------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class WorkflowArrived:
    workflow: int
    time: float


@dataclass(frozen=True, slots=True)
class StageAssigned:
    """A planner's choice was accepted: reserve ``gpus`` for ``stage``."""

    stage: int
    gpus: tuple[int, ...]
    time: float
    est_run_s: float


@dataclass(frozen=True, slots=True)
class StageStarted:
    stage: int
    time: float


@dataclass(frozen=True, slots=True)
class StageFinished:
    stage: int
    time: float
    run_s: float


Event = WorkflowArrived | StageAssigned | StageStarted | StageFinished


@dataclass(frozen=True, slots=True)
class StartEffects:
    """What starting a stage changed: loads and evictions, for counters."""

    loaded_gpus: int
    evictions: int
    pod_started: bool = False


# ------------------------------------------------------------------------ queue folds


class QueueFolds:
    """Per GPU, what it holds as its queued stages start, kept between snapshots.

    Planners ask this of every GPU for every candidate (`Snapshot.model_groups`) and of
    every queued stage they estimate, and a queue under saturation is long, so folding it
    afresh per snapshot dominated the simulator's time. GPU states are immutable, and
    from one state of a GPU to the next its queue mostly keeps a common head: a
    reservation appends, a trial reservation a planner did not take is gone again, a
    started stage leaves the head. So the folds after each queued stage of the last state
    seen are kept, and the next state reuses those of the head it shares: after a start,
    only when the started stage loaded its model as the fold did. Any other change (a pod
    replaced, a stage forgotten) folds afresh. Results are exactly those of a fresh fold:
    the same `_load` steps in the same order.
    """

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: dict[int, tuple[GpuState, list[Resident]]] = {}

    def partials(self, g: int, st: GpuState, step_of: Callable[[int], FoldStep]) -> list[Resident]:
        """What GPU ``g`` in state ``st`` holds once its first ``i`` queued stages have
        started, for ``i`` from 0 to the queue's length; ``step_of(g)`` is one queued
        stage's load onto it."""
        seen = self._seen.get(g)
        if seen is not None and seen[0] is st:
            return seen[1]
        out, done = [st.resident], 0
        if seen is not None:
            old, parts = seen
            # j = 1: the head started since. Both are tried: a warm start may leave the
            # resident models as they were, so j = 0 can match with nothing in common.
            for j in (0, 1):
                if j < len(parts) and parts[j] == st.resident:
                    c = _common_head(old.pending[j:], st.pending)
                    if c > done:
                        out, done = parts[j : j + c + 1], c
        step = step_of(g)
        resident = out[-1]
        for p in st.pending[done:]:
            resident = step(resident, p)
            out.append(resident)
        self._seen[g] = (st, out)
        return out


def _common_head(a: tuple[PendingStage, ...], b: tuple[PendingStage, ...]) -> int:
    """Length of the longest common head of two queues."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:  # one extends the other: the usual case, compared in C
        return n
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


# --------------------------------------------------------------------------- snapshot


@dataclass(frozen=True)
class Snapshot:
    """An immutable view of the cluster for one planning decision."""

    now: float
    cluster: Cluster
    catalog: ModelCatalog
    graph: WorkloadGraph
    gpus: tuple[GpuState, ...]
    nodes: tuple[NodeState, ...]
    frontier: tuple[int, ...]
    placement: Mapping[int, tuple[int, ...]]
    finished: Mapping[int, float]
    arrived: Mapping[int, float]
    service: Mapping[int, float]
    hosting: Hosting = field(default_factory=Hosting)
    """The launcher's model: what outlives a stage, and what a pod costs to start."""
    queue_folds: QueueFolds = field(default_factory=QueueFolds, compare=False, repr=False)
    """What each GPU holds once its whole queue has started, shared by every snapshot of
    one `ClusterState` and the snapshots `reserve` derives from them."""

    @property
    def gpus_keep_state(self) -> bool:
        """Whether weights and prefix KV outlive the stage that loaded them."""
        return self.hosting.keeps_state

    def reserve(self, stage: int, gpus: tuple[int, ...], est_run_s: float) -> Snapshot:
        """This snapshot as it would look after reserving ``gpus`` for ``stage``.

        Lets a policy place several frontier stages in one epoch, each seeing the queues
        and warm models the earlier choices leave, without touching `ClusterState`.
        """
        new = list(self.gpus)
        for g, st in reserve_gpus(self.gpus, self.graph.stages[stage], gpus, self.now, est_run_s):
            new[g] = st
        child = replace(
            self, gpus=tuple(new), frontier=tuple(s for s in self.frontier if s != stage)
        )
        self._carry_views(child, frozenset(gpus))
        return child

    def _carry_views(self, child: Snapshot, changed: frozenset[int]) -> None:
        """Give ``child`` this snapshot's prefix holders and wait order, updated for
        ``changed``.

        ``child`` differs from this snapshot only on the GPUs of one reservation (one
        node), so only those are looked at again: a planner reserving stage after stage
        pays per reservation for one node, not the cluster. The answers are those of
        computing afresh. `model_groups` is not carried: candidate lists follow its
        iteration order, which for an equal set can differ with how it was built.
        """
        held = self.__dict__.get("_holder_cache")
        if held:
            cache = child._holder_cache
            for key, found in held.items():
                if not isinstance(key, str):  # a prefix key (model, prefix id)
                    kept = {g for g in found if g not in changed}
                    kept.update(g for g in changed if _holds_prefix(child.gpus[g], key))
                    cache[key] = frozenset(kept)
        order = self.__dict__.get("wait_order")
        if order is not None:
            node = self.cluster.gpus[next(iter(changed))].node
            rows = list(order)
            rows[node] = child._node_wait_order(node)
            child.__dict__["wait_order"] = tuple(rows)

    @cached_property
    def _holder_cache(self) -> dict[object, Any]:
        return {}

    def model_groups(self, model: str) -> frozenset[tuple[int, ...]]:
        """GPU groups that will hold ``model`` once their queues have started; memoised.

        Resident now and not evicted by a queued stage, or loaded by a queued stage and
        not evicted by a later one (`resident_after_queue`).
        """
        cache = self._holder_cache
        hit = cache.get(model)
        if hit is None:
            found: set[tuple[int, ...]] = set()
            for g in range(len(self.gpus)):
                for m, group, _ in self.resident_after_queue(g):
                    if m == model:
                        found.add(group)
            hit = cache[model] = frozenset(found)
        return hit

    def resident_after_queue(
        self, g: int, before: int | None = None
    ) -> tuple[tuple[str, tuple[int, ...], float], ...]:
        """What GPU ``g`` will hold once its queued stages have loaded their models.

        A stage queued here loads its model when it starts and may evict (LRU) a model
        resident now, so "resident now" overstates what a stage placed behind the queue
        finds warm. ``before`` stops at that queued stage (what it finds when it starts);
        None folds the whole queue (what a new placement finds). Memoised across
        snapshots by `QueueFolds`. Pod replacement under worker pods is not folded in:
        `CostModel.pod_ready` prices it.
        """
        st = self.gpus[g]
        if not st.pending or (before is not None and st.pending[0].stage == before):
            return st.resident
        parts = self.queue_folds.partials(g, st, self._fold_step)
        if before is not None:
            for i, p in enumerate(st.pending):
                if p.stage == before:
                    return parts[i]
        return parts[-1]

    def _fold_step(self, g: int) -> FoldStep:
        """What GPU ``g`` holds after a queued stage loads its model onto it (LRU)."""
        usable = self.cluster.gpu_type_of_node(self.cluster.gpus[g].node).usable_gib
        models, stages = self.catalog.models, self.graph.stages

        def step(resident: Resident, p: PendingStage) -> Resident:
            spec, k = models[p.model], len(p.group)
            kv_gib = spec.kv_bytes_per_token * stages[p.stage].tokens / GIB / k
            return _load(resident, p.model, p.group, spec.weights_gib / k, kv_gib, usable)[0]

        return step

    def evicted_by(self, g: int, model: str, group: tuple[int, ...], tokens: int) -> set[Residency]:
        """Residencies that loading ``model`` for ``group`` onto GPU ``g`` would drop.

        Applied to what ``g`` holds once its queue has started (`resident_after_queue`),
        with the LRU eviction of a real start; another layout of the same model counts.
        """
        spec, k = self.catalog.models[model], len(group)
        usable = self.cluster.gpu_type_of_node(self.cluster.gpus[g].node).usable_gib
        before = self.resident_after_queue(g)
        kv_gib = spec.kv_bytes_per_token * tokens / GIB / k
        after, _, _ = _load(before, model, group, spec.weights_gib / k, kv_gib, usable)
        kept = {(m, grp) for m, grp, _ in after}
        return {(m, grp) for m, grp, _ in before if (m, grp) not in kept}

    def idle(self, g: int) -> bool:
        """Whether GPU ``g`` runs nothing, has nothing queued and is free now."""
        st = self.gpus[g]
        return st.running is None and not st.pending and st.busy_until <= self.now

    def prefix_gpus(self, key: PrefixKey) -> frozenset[int]:
        """GPUs that hold the prefix KV ``key`` or will (a queued stage computes it)."""
        cache = self._holder_cache
        hit = cache.get(key)
        if hit is None:
            hit = cache[key] = frozenset(
                g for g, st in enumerate(self.gpus) if _holds_prefix(st, key)
            )
        return hit

    @cached_property
    def wait_order(self) -> tuple[tuple[int, ...], ...]:
        """Per node, its GPUs by when they free up (idle ones first, ties by index)."""
        return tuple(self._node_wait_order(n) for n in range(len(self.cluster.node_gpus)))

    def _node_wait_order(self, node: int) -> tuple[int, ...]:
        now, gpus = self.now, self.gpus
        return tuple(
            sorted(self.cluster.node_gpus[node], key=lambda g: (max(gpus[g].busy_until, now), g))
        )

    def free_at(self, gpus: tuple[int, ...]) -> float:
        """Earliest time every GPU of ``gpus`` is free, per current estimates."""
        t = self.now
        for g in gpus:
            b = self.gpus[g].busy_until
            if b > t:
                t = b
        return t


def _holds_prefix(st: GpuState, key: PrefixKey) -> bool:
    """Whether a GPU holds prefix KV ``key`` or will (a stage queued on it computes it)."""
    return key in st.pending_prefixes or any(k == key for k, _ in st.prefix_kv)


def reserve_gpus(
    gpus_now: Sequence[GpuState],
    stage: StageInfo,
    gpus: tuple[int, ...],
    now: float,
    est_run_s: float,
) -> list[tuple[int, GpuState]]:
    """New states of ``gpus`` once ``stage`` is queued on them (shared by state and snapshot)."""
    prefix = (stage.model, stage.prefix_id) if stage.prefix_id else None
    item = PendingStage(stage.uid, stage.model, gpus, prefix, est_run_s)
    start = max([now, *(gpus_now[g].busy_until for g in gpus)])
    out = []
    for g in gpus:
        st = gpus_now[g]
        new = replace(
            st,
            pending=(*st.pending, item),
            pending_loads=_counted(st.pending_loads, (stage.model, gpus), 1),
            pending_prefixes=_counted(st.pending_prefixes, prefix, 1),
            pending_run_s=st.pending_run_s + est_run_s,
            busy_until=start + est_run_s,
        )
        out.append((g, new))
    return out


# ------------------------------------------------------------------------------ state


class ClusterState:
    """Mutable bookkeeping of a cluster running a workload. Change it only via `apply`."""

    def __init__(
        self,
        cluster: Cluster,
        catalog: ModelCatalog,
        graph: WorkloadGraph,
        *,
        hosting: Hosting | None = None,
    ) -> None:
        """
        Args:
            hosting: how the launcher hosts stages (default: local device workers, which
                keep weights and prefix KV warm). With a pod per stage, weights and prefix
                KV leave the GPU with the stage, so each stage loads its model (from the
                node's host cache or disk, which do persist); with worker pods they stay
                while the GPU set's pod lives.
        """
        self.cluster = cluster
        self.catalog = catalog
        self.graph = graph
        self.hosting = hosting or Hosting()
        self.now = 0.0
        prestarted = self.hosting.set_workers and self.hosting.prestart
        self._gpus: list[GpuState] = [
            GpuState(pod=(ref.index,) if prestarted else None) for ref in cluster.gpus
        ]
        self._nodes: list[NodeState] = [
            NodeState(disk=frozenset(node.models_on_disk)) for node in cluster.nodes
        ]
        self._node_of = tuple(ref.node for ref in cluster.gpus)
        self._ready: set[int] = set()
        self._waiting_parents: dict[int, int] = {}
        self._placement: dict[int, tuple[int, ...]] = {}
        self._started: dict[int, float] = {}
        self._loaded_at_start: set[int] = set()
        self._finished: dict[int, float] = {}
        self._arrived: dict[int, float] = {}
        self._service: dict[int, float] = {}
        self._queue_folds = QueueFolds()

    # -- reading ---------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        return Snapshot(
            now=self.now,
            cluster=self.cluster,
            catalog=self.catalog,
            graph=self.graph,
            gpus=tuple(self._gpus),
            nodes=tuple(self._nodes),
            frontier=tuple(sorted(self._ready)),
            placement=MappingProxyType(self._placement),
            finished=MappingProxyType(self._finished),
            arrived=MappingProxyType(self._arrived),
            service=MappingProxyType(self._service),
            hosting=self.hosting,
            queue_folds=self._queue_folds,
        )

    def gpu(self, g: int) -> GpuState:
        return self._gpus[g]

    def node(self, n: int) -> NodeState:
        return self._nodes[n]

    @property
    def ready(self) -> frozenset[int]:
        return frozenset(self._ready)

    def placement_of(self, stage: int) -> tuple[int, ...] | None:
        return self._placement.get(stage)

    def startable(self, stage: int) -> bool:
        """A reserved stage may start when it heads the queue of every one of its GPUs."""
        for g in self._placement[stage]:
            st = self._gpus[g]
            if st.running is not None or not st.pending or st.pending[0].stage != stage:
                return False
        return True

    def heads(self, gpus: tuple[int, ...]) -> list[int]:
        """Stages at the head of these GPUs' queues, in GPU order, without repeats."""
        out: list[int] = []
        for g in gpus:
            pend = self._gpus[g].pending
            if pend and pend[0].stage not in out:
                out.append(pend[0].stage)
        return out

    # -- changing --------------------------------------------------------------------

    def extend_graph(self, graph: WorkloadGraph) -> None:
        """Replace the graph by one that extends it (`WorkloadGraph.extend`).

        For callers that add workflows while running (the Airflow executor): the new
        workflows then arrive through `WorkflowArrived` as usual. Snapshots taken earlier
        keep the graph they were taken with.

        Raises:
            ValueError: when ``graph`` does not start with every current stage unchanged.
        """
        n = len(self.graph.stages)
        if len(graph.stages) < n or graph.stages[:n] != self.graph.stages:
            raise ValueError("the new graph does not extend the current one")
        self.graph = graph

    def forget(self, workflows: Collection[int]) -> Renumbering:
        """Drop ``workflows`` from the graph and from every map here; renumber the rest.

        For callers that would otherwise keep every workflow they ever met (the Airflow
        executor meets one per DAG run): finished ones go, so memory stays bounded by what
        is live. What GPUs and nodes hold (models, prefix KV) is kept: it is keyed by model,
        not by stage. Snapshots taken earlier keep the graph they were taken with.

        Raises:
            ValueError: a stage of one of ``workflows`` is queued or running on a GPU.
        """
        drop = set(workflows)
        for g, st in enumerate(self._gpus):
            for uid in (st.running, *(p.stage for p in st.pending)):
                if uid is not None and self.graph.stages[uid].workflow in drop:
                    stage = stage_label(self.graph.stages[uid])
                    raise ValueError(f"cannot forget {stage}: it is queued or running on GPU {g}")
        self.graph, moved = self.graph.without(drop)
        s, w = moved.stages, moved.workflows
        self._gpus = [_renumbered(st, s) for st in self._gpus]
        self._queue_folds = QueueFolds()  # a renumbered queue may equal an old one by value
        self._ready = {s[u] for u in self._ready if u in s}
        self._waiting_parents = {s[u]: n for u, n in self._waiting_parents.items() if u in s}
        self._placement = {s[u]: g for u, g in self._placement.items() if u in s}
        self._started = {s[u]: t for u, t in self._started.items() if u in s}
        self._loaded_at_start = {s[u] for u in self._loaded_at_start if u in s}
        self._finished = {s[u]: t for u, t in self._finished.items() if u in s}
        self._arrived = {w[x]: t for x, t in self._arrived.items() if x in w}
        self._service = {w[x]: t for x, t in self._service.items() if x in w}
        return moved

    def is_finished(self, stage: int) -> bool:
        """Whether ``stage`` has finished (either way)."""
        return stage in self._finished

    def preload(self, model: str, gpus: tuple[int, ...]) -> None:
        """Mark ``model`` resident on ``gpus`` (one shard group) as of now.

        For restoring residency recorded by a previous scheduler run (or a warm pool) before
        any stage runs; the node's host cache and disk get the model too, as a real load
        would have left them.
        """
        model_spec = self.catalog.models[model]
        shard_gib = model_spec.weights_gib / len(gpus)
        pod = gpus if self.hosting.set_workers else None
        for g in gpus:
            usable = self.cluster.gpu_type_of_node(self._node_of[g]).usable_gib
            resident, _, _ = _load(self._gpus[g].resident, model, gpus, shard_gib, 0.0, usable)
            self._gpus[g] = replace(self._gpus[g], resident=resident, pod=pod, idle_since=self.now)
        node = self._node_of[gpus[0]]
        self._nodes[node] = _cache_on_node(
            self._nodes[node],
            model,
            model_spec.weights_gib,
            self.cluster.nodes[node].host_cache_gib,
        )

    def adopt_worker(self, gpus: tuple[int, ...]) -> None:
        """A worker that outlived a scheduler restart holds exactly ``gpus``.

        Call before `preload` puts what it holds back. Where the state had other workers
        on those GPUs (the single-GPU ones it starts with, when the adopted worker is a
        shard group's), they are replaced as a real start would: the next stage on
        ``gpus`` finds a worker and pays no start, a stage on one of its GPUs alone pays
        one. Nothing without set workers (a pod per stage).
        """
        if not self.hosting.set_workers:
            return
        if any(self._gpus[g].pod != gpus for g in gpus):
            self._replace_workers(gpus)
        for g in gpus:
            self._gpus[g] = replace(self._gpus[g], idle_since=self.now)

    def correct_pod_start(self, pod_start_s: float) -> None:
        """Price pod starts at ``pod_start_s`` from now on (measured, `PodStartCorrection`)."""
        self.hosting = replace(self.hosting, pod_start_s=pod_start_s)

    def drop_worker(self, gpus: tuple[int, ...]) -> None:
        """The worker holding ``gpus`` is gone (deleted, evicted, killed, node lost).

        What it held is gone on every GPU of its set, and no worker pod lives there any
        more: the next stage on them starts a new, empty one. Queued and running stages
        are left alone (the caller ends those that ran there).
        """
        doomed = set(gpus)
        for g in gpus:
            doomed.update(self._gpus[g].pod or ())
        for g in doomed:
            self._gpus[g] = replace(self._gpus[g], pod=None, resident=(), prefix_kv=())

    def apply(self, event: Event) -> StartEffects | None:
        """Advance the clock to the event's time and apply it.

        Returns the load/eviction effects for `StageStarted`, else None.
        """
        self.now = max(self.now, event.time)
        if isinstance(event, WorkflowArrived):
            self._arrive(event)
        elif isinstance(event, StageAssigned):
            self._assign(event)
        elif isinstance(event, StageStarted):
            return self._start(event)
        else:
            self._finish(event)
        return None

    def _arrive(self, event: WorkflowArrived) -> None:
        wf = self.graph.workflows[event.workflow]
        self._arrived[event.workflow] = event.time
        self._service.setdefault(event.workflow, 0.0)
        for uid in wf.stages:
            n = len(self.graph.stages[uid].parents)
            if n == 0:
                self._ready.add(uid)
            else:
                self._waiting_parents[uid] = n

    def _assign(self, event: StageAssigned) -> None:
        stage = self.graph.stages[event.stage]
        if event.stage not in self._ready:
            raise ValueError(f"stage {stage.workflow_id}/{stage.stage_id} is not ready")
        self._ready.discard(event.stage)
        self._placement[event.stage] = event.gpus
        for g, st in reserve_gpus(self._gpus, stage, event.gpus, self.now, event.est_run_s):
            self._gpus[g] = st

    def _start(self, event: StageStarted) -> StartEffects:
        stage = self.graph.stages[event.stage]
        gpus = self._placement[event.stage]
        if not self.startable(event.stage):
            raise ValueError(
                f"stage {stage.workflow_id}/{stage.stage_id} is not at its queues' head"
            )
        self._started[event.stage] = event.time
        model = self.catalog.models[stage.model]
        k = len(gpus)
        shard_gib = model.weights_gib / k
        kv_gib = model.kv_bytes_per_token * stage.tokens / GIB / k
        started = self._start_pod(gpus, event.time)
        pod_started = started and self.hosting.mode != "local"  # a local worker is no pod
        loaded = evictions = 0
        for g in gpus:
            st = self._gpus[g]
            usable = self.cluster.gpu_type_of_node(self._node_of[g]).usable_gib
            resident, was_warm, evicted = _load(
                st.resident, stage.model, gpus, shard_gib, kv_gib, usable
            )
            loaded += 0 if was_warm else 1
            evictions += evicted
            head = st.pending[0]
            self._gpus[g] = replace(
                st,
                running=event.stage,
                resident=resident,
                pending=st.pending[1:],
                pending_loads=_counted(st.pending_loads, (head.model, head.group), -1),
                pending_prefixes=_counted(st.pending_prefixes, head.prefix, -1),
                pending_run_s=max(0.0, st.pending_run_s - head.est_run_s),
            )
        node = self._node_of[gpus[0]]
        if loaded:
            self._loaded_at_start.add(event.stage)
            self._nodes[node] = _cache_on_node(
                self._nodes[node],
                stage.model,
                model.weights_gib,
                self.cluster.nodes[node].host_cache_gib,
                fill_from=event.time,
            )
        return StartEffects(loaded_gpus=loaded, evictions=evictions, pod_started=pod_started)

    def _start_pod(self, gpus: tuple[int, ...], now: float) -> bool:
        """Make sure a live worker (pod or local process) holds exactly ``gpus``; True if
        one started.

        A worker for another GPU set on any of these GPUs is stopped first, and with it
        everything it held on all its GPUs (none of them runs a stage: that stage would
        hold these GPUs too). A new worker starts empty.
        """
        if not self.hosting.keeps_state:  # every stage has a pod of its own
            return True
        if not self.hosting.set_workers:
            return False
        idle_s = self.hosting.worker_idle_s
        if all(self._gpus[g].pod_alive(gpus, now, idle_s) for g in gpus):
            return False
        self._replace_workers(gpus)
        return True

    def _replace_workers(self, gpus: tuple[int, ...]) -> None:
        """An empty worker for exactly ``gpus``; those it replaces go with what they held."""
        doomed = set(gpus)
        for g in gpus:
            doomed.update(self._gpus[g].pod or ())
        for h in doomed:
            self._gpus[h] = replace(
                self._gpus[h], pod=gpus if h in gpus else None, resident=(), prefix_kv=()
            )

    def _finish(self, event: StageFinished) -> None:
        stage = self.graph.stages[event.stage]
        gpus = self._placement[event.stage]
        model = self.catalog.models[stage.model]
        prefix_gib = model.kv_bytes_per_token * stage.prefix_tokens / GIB / len(gpus)
        for g in gpus:
            st = self._gpus[g]
            kv = st.prefix_kv
            if stage.prefix_id and prefix_gib > 0:
                gpu_type = self.cluster.gpu_type_of_node(self._node_of[g])
                budget = gpu_type.memory_gib * gpu_type.prefix_kv_fraction
                kv = _touch_lru(kv, (stage.model, stage.prefix_id), prefix_gib, budget)
            busy = event.time + st.pending_run_s
            if self.hosting.keeps_state:
                self._gpus[g] = replace(
                    st, running=None, prefix_kv=kv, busy_until=busy, idle_since=event.time
                )
            else:  # the stage's pod freed the GPU: nothing stays resident
                self._gpus[g] = replace(
                    st,
                    running=None,
                    resident=(),
                    prefix_kv=(),
                    busy_until=busy,
                    idle_since=event.time,
                )
        self._finished[event.stage] = event.time
        if event.stage in self._loaded_at_start:
            self._loaded_at_start.discard(event.stage)
            node = self._node_of[gpus[0]]
            self._nodes[node] = _fill_seen_through(
                self._nodes[node], stage.model, self._started[event.stage]
            )
        wf = stage.workflow
        self._service[wf] = self._service.get(wf, 0.0) + event.run_s * len(gpus)
        for child in stage.children:
            left = self._waiting_parents[child] - 1
            if left == 0:
                del self._waiting_parents[child]
                self._ready.add(child)
            else:
                self._waiting_parents[child] = left


_K = TypeVar("_K")


def _counted(counts: Mapping[_K, int], key: _K | None, delta: int) -> Mapping[_K, int]:
    """A copy of ``counts`` with ``key`` moved by ``delta`` (dropped at zero)."""
    if key is None:
        return counts
    out = dict(counts)
    n = out.get(key, 0) + delta
    if n > 0:
        out[key] = n
    else:
        out.pop(key, None)
    return out


def _load(
    resident: tuple[tuple[str, tuple[int, ...], float], ...],
    model: str,
    group: tuple[int, ...],
    shard_gib: float,
    kv_gib: float,
    usable_gib: float,
) -> tuple[tuple[tuple[str, tuple[int, ...], float], ...], bool, int]:
    """Make ``model`` resident for ``group`` on one GPU; evict LRU models to fit.

    Returns the new resident tuple (most recent last), whether it was already warm, and
    how many models were evicted. A different shard layout of the same model is replaced.
    """
    warm = any(m == model and g == group for m, g, _ in resident)
    kept = [r for r in resident if r[0] != model]
    evicted = 0
    while kept and sum(r[2] for r in kept) + shard_gib + kv_gib > usable_gib:
        kept.pop(0)
        evicted += 1
    kept.append((model, group, shard_gib))
    return tuple(kept), warm, evicted


def _touch_lru(
    entries: tuple[tuple[PrefixKey, float], ...], key: PrefixKey, gib: float, budget: float
) -> tuple[tuple[PrefixKey, float], ...]:
    """Insert or refresh ``key`` in an LRU list bounded by ``budget`` GiB."""
    if gib > budget:
        return entries
    kept = [e for e in entries if e[0] != key]
    while kept and sum(e[1] for e in kept) + gib > budget:
        kept.pop(0)
    kept.append((key, gib))
    return tuple(kept)


def _cache_on_node(
    node: NodeState, model: str, gib: float, capacity: float, fill_from: float | None = None
) -> NodeState:
    """A model loaded on a node lands on its local disk and in its host page cache (LRU).

    With ``fill_from`` the load began then, and when it did not find the model in the
    host cache it is the fill that the cache and disk wait for (`NodeState.fills`).
    """
    fills = node.fills
    if fill_from is not None and not node.cached(model):
        fills = {**fills, model: (fill_from, model in node.disk)}
    cache = list(node.host_cache)
    cache = [c for c in cache if c[0] != model]
    if gib <= capacity:
        while cache and sum(c[1] for c in cache) + gib > capacity:
            cache.pop(0)
        cache.append((model, gib))
    return NodeState(host_cache=tuple(cache), disk=node.disk | {model}, fills=fills)


def _fill_seen_through(node: NodeState, model: str, load_began: float) -> NodeState:
    """``node`` once a stage that loaded ``model`` there at ``load_began`` has finished.

    Such a load read the fill in flight when it began (or was the fill), so the fill is
    through: its recorded start only served to estimate its end, and an estimate later
    than what was observed would keep planners holding GPUs for a fetch that is over
    (a fetch faster than estimated is as likely as a slower one).
    """
    fill = node.fills.get(model)
    if fill is None or fill[0] > load_began:
        return node
    fills = {m: f for m, f in node.fills.items() if m != model}
    return replace(node, fills=fills)


def _renumbered(st: GpuState, uids: Mapping[int, int]) -> GpuState:
    """``st`` with its running and queued stages under their new uids."""
    if st.running is None and not st.pending:
        return st
    return replace(
        st,
        running=None if st.running is None else uids[st.running],
        pending=tuple(replace(p, stage=uids[p.stage]) for p in st.pending),
    )


def stage_label(stage: StageInfo) -> str:
    """``workflow/stage`` for messages."""
    return f"{stage.workflow_id}/{stage.stage_id}"
