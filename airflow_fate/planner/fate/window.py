"""The data of a receding-horizon schedule: which stages, on which GPU sets, how long.

A *window* is the part of the near future the planner schedules at one decision epoch:
the most critical ready stages (the frontier) plus stages that become ready soon (every
parent finished, running, queued or itself in the window). Each stage has a few
*options* (GPU sets) with, in integer ticks from now:

- ``earliest``: when every GPU of the set is free and the stage's parents outside the
  window have finished (their estimated end);
- ``run``: the warm run (input transfer from parents already placed, prefill after
  prefix reuse, decode), without the model load;
- ``load``: the load of the model onto the set when it is not resident there at the
  window's start (0 when warm). Stages of one model on one GPU set share that load: it is
  paid once, and they batch behind it (see `schedule`).

Between the options the window records what the schedule must respect besides GPU
exclusivity: the transfer of a parent's output to a child on another GPU set
(``transfer``), which resident models each load evicts (``evicts``), and pairs of loads
that cannot stay resident together on some GPU (``clashes``). Everything is computed
once from the snapshot with the state-conditional cost model; the solver never calls it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.plan import StageCost
from airflow_fate.planner.candidates import groups_for
from airflow_fate.planner.fate.backlog import BacklogValue
from airflow_fate.planner.fate.scoring import Scored
from airflow_fate.state.cluster_state import Residency, Snapshot

TICK_S = 0.001
"""Seconds per tick: CP-SAT works on integers; embedding stages run for a few ms."""

LoadKey = tuple[str, tuple[int, ...]]
"""A model load onto one GPU set: ``(model, group)`` (the residency it creates)."""


def ticks(seconds: float) -> int:
    """``seconds`` as whole ticks (rounded; never negative)."""
    return max(0, round(seconds / TICK_S))


@dataclass(frozen=True, slots=True)
class Option:
    """One GPU set a window stage may run on (times in ticks from now).

    Attributes:
        gpus: the GPU set (one node).
        earliest: when the set is free and the stage's outside parents are done.
        run: warm run: input, prefill, decode.
        load: model load when the model is not resident on the set now; 0 when warm.
        extra: the stage's future terms on this set (`Scorer`), in ticks, added to the
            objective for frontier stages: what the placement leaves beyond the window.
    """

    gpus: tuple[int, ...]
    earliest: int
    run: int
    load: int
    extra: int = 0


@dataclass(frozen=True, slots=True)
class WindowStage:
    """A stage of the window: frontier (may start now) or soon ready."""

    uid: int
    model: str
    weight: float
    ready: bool
    parents: tuple[int, ...]
    """Parents that are themselves in the window (the schedule orders them)."""
    options: tuple[Option, ...]

    def load_key(self, i: int) -> LoadKey | None:
        """The load option ``i`` needs, or None when it is warm."""
        o = self.options[i]
        return (self.model, o.gpus) if o.load > 0 else None


@dataclass(frozen=True)
class Window:
    """Everything the schedule needs, in ticks.

    Attributes:
        stages: window stages, ready ones first, parents before children.
        free: per GPU in any option, ticks until it is free.
        transfer: ``(parent, i, child, j) -> ticks`` for option pairs whose parent output
            must move (absent: no transfer).
        evicts: per load, the residencies it drops on its GPUs (`Snapshot.evicted_by`).
        clashes: pairs of loads that share a GPU on which they do not fit together: one
            load's stages must all finish before the other loads.
        shared_loads: False when nothing outlives a stage (a pod per stage): every stage
            pays its own load and none is shared.
    """

    stages: tuple[WindowStage, ...]
    free: dict[int, int]
    transfer: dict[tuple[int, int, int, int], int] = field(default_factory=dict)
    evicts: dict[LoadKey, frozenset[Residency]] = field(default_factory=dict)
    clashes: tuple[tuple[LoadKey, LoadKey], ...] = ()
    shared_loads: bool = True

    def index(self) -> dict[int, WindowStage]:
        return {s.uid: s for s in self.stages}

    def horizon(self) -> int:
        """An upper bound on any end time: everything run back to back after the latest free."""
        latest = max([0, *self.free.values()])
        work = 0
        for s in self.stages:
            work += max(o.earliest + o.run + o.load for o in s.options)
        return latest + work + sum(self.transfer.values()) + 1


def soon_ready(snap: Snapshot, frontier: list[int]) -> list[int]:
    """Unplaced stages that become ready once running, queued or ``frontier`` stages end.

    Children of those stages, not yet ready, whose every parent has finished or is one
    of them: the next generation the window can plan a GPU for.
    """
    stages = snap.graph.stages
    near = set(frontier)
    for st in snap.gpus:
        if st.running is not None:
            near.add(st.running)
        near.update(p.stage for p in st.pending)
    ready = set(snap.frontier)
    out: list[int] = []
    seen: set[int] = set()
    for u in sorted(near):
        for c in stages[u].children:
            if c in seen or c in ready or c in snap.placement:
                continue
            seen.add(c)
            if all(p in snap.finished or p in near for p in stages[c].parents):
                out.append(c)
    return out


@dataclass(frozen=True)
class WindowSettings:
    """How a window is built (from `FateConfig`).

    Attributes:
        options: GPU sets kept per soon-ready stage: the earliest finishing on each
            node, at the stage's smallest fitting degree (a wide group reserved for a
            stage not yet ready idles GPUs that ready stages could use); ready stages
            keep their scored candidates.
        future_terms: add each frontier option's future terms to the objective.
    """

    options: int
    future_terms: bool


def build_window(
    snap: Snapshot,
    cost: CostModel,
    scored: dict[int, list[Scored]],
    soon: list[int],
    weights: dict[int, float],
    settings: WindowSettings,
    backlog: BacklogValue | None = None,
) -> Window:
    """The window of ``scored`` frontier stages (their scored options) and ``soon`` stages.

    With ``backlog``, a ready option that loads its model also carries, in its future
    terms, what the copy it opens saves that model's whole ready backlog and what the
    copies it evicts cost theirs (`backlog`).
    """
    now = snap.now
    keep_state = snap.gpus_keep_state
    stages_out: list[WindowStage] = []
    in_window = set(scored) | set(soon)
    graph_stages = snap.graph.stages
    for uid in sorted(scored, key=lambda u: (-weights[u], u)):
        stage = graph_stages[uid]
        options = []
        for o in scored[uid]:
            extra = (o.score - o.finish) if settings.future_terms else 0.0
            if backlog is not None and o.cost.load > 0:
                ready_in, warm_run = o.cost.wait + o.cost.load, o.cost.run - o.cost.load
                extra += backlog.load_term(stage.model, o.gpus, stage.tokens, ready_in, warm_run)
            options.append(_option(o.gpus, o.cost.wait, o.cost.run, o.cost.load, extra, 0.0))
        stages_out.append(_stage(snap, uid, weights[uid], True, in_window, options, keep_state))
    for uid in _topological(snap, soon):
        stage = snap.graph.stages[uid]
        release = _release(snap, uid, in_window) - now
        quick = []
        for g in groups_for(stage, snap, cost, stage.min_shards):
            est = cost.estimate(stage, g, snap)
            if est is not None:
                quick.append((max(est.wait, release) + est.run, g, est))
        options = [
            _option(g, est.wait, est.run, est.load, 0.0, release)
            for _, g, est in _per_node(snap, quick)[: settings.options]
        ]
        if options:
            stages_out.append(
                _stage(snap, uid, weights[uid], False, in_window, options, keep_state)
            )
    return _relations(snap, cost, tuple(stages_out), keep_state)


def _per_node(
    snap: Snapshot, quick: list[tuple[float, tuple[int, ...], StageCost]]
) -> list[tuple[float, tuple[int, ...], StageCost]]:
    """The earliest-finishing group of each node, earliest first."""
    best: dict[int, tuple[float, tuple[int, ...], StageCost]] = {}
    for q in sorted(quick, key=lambda q: (q[0], q[1])):
        best.setdefault(snap.cluster.gpus[q[1][0]].node, q)
    return sorted(best.values(), key=lambda q: (q[0], q[1]))


def _option(
    gpus: tuple[int, ...], wait: float, run: float, load: float, extra: float, release: float
) -> Option:
    return Option(
        gpus=gpus,
        earliest=ticks(max(wait, release, 0.0)),
        run=max(1, ticks(run - load)),
        load=ticks(load) if load > 0 else 0,
        extra=round(extra / TICK_S),
    )


def _stage(
    snap: Snapshot,
    uid: int,
    weight: float,
    ready: bool,
    in_window: set[int],
    options: list[Option],
    keep_state: bool,
) -> WindowStage:
    if not keep_state:  # every stage loads its own copy: the load is part of its run
        options = [Option(o.gpus, o.earliest, o.run + o.load, 0, o.extra) for o in options]
    stage = snap.graph.stages[uid]
    parents = tuple(p for p in stage.parents if p in in_window)
    return WindowStage(uid, stage.model, weight, ready, parents, tuple(options))


def _release(snap: Snapshot, uid: int, in_window: set[int]) -> float:
    """When the stage's parents outside the window end (estimated; now if finished)."""
    t = snap.now
    for p in snap.graph.stages[uid].parents:
        if p in snap.finished or p in in_window:
            continue
        gpus = snap.placement.get(p)
        if gpus is not None:
            t = max(t, snap.free_at(gpus))
    return t


def _topological(snap: Snapshot, uids: list[int]) -> list[int]:
    """``uids`` with in-set parents first (uids of one workflow grow along its DAG order)."""
    return sorted(uids, key=lambda u: (snap.graph.stages[u].workflow, u))


def _relations(
    snap: Snapshot, cost: CostModel, stages: tuple[WindowStage, ...], keep_state: bool
) -> Window:
    free: dict[int, int] = {}
    for s in stages:
        for o in s.options:
            for g in o.gpus:
                free.setdefault(g, ticks(snap.free_at((g,)) - snap.now))
    transfer: dict[tuple[int, int, int, int], int] = {}
    by_uid = {s.uid: s for s in stages}
    graph = snap.graph.stages
    for s in stages:
        for p in s.parents:
            nbytes = graph[p].output_bytes
            for i, po in enumerate(by_uid[p].options):
                for j, so in enumerate(s.options):
                    t = ticks(cost.transfer_time(nbytes, po.gpus, so.gpus))
                    if t > 0:
                        transfer[p, i, s.uid, j] = t
    if not keep_state:
        return Window(stages, free, transfer, shared_loads=False)
    tokens: dict[LoadKey, int] = {}
    for s in stages:
        for i in range(len(s.options)):
            key = s.load_key(i)
            if key is not None:
                tokens[key] = max(tokens.get(key, 0), graph[s.uid].tokens)
    evicts = {
        key: frozenset(r for g in key[1] for r in snap.evicted_by(g, key[0], key[1], n))
        for key, n in tokens.items()
    }
    return Window(stages, free, transfer, evicts, _clashes(snap, list(tokens)))


def _clashes(snap: Snapshot, loads: list[LoadKey]) -> tuple[tuple[LoadKey, LoadKey], ...]:
    """Load pairs sharing a GPU on which they cannot both stay resident.

    Two layouts of one model never can (a load replaces the other layout); two models
    cannot when their weight shards exceed the GPU's usable memory together.
    """
    models = snap.catalog.models
    out = []
    for a, ka in enumerate(loads):
        for kb in loads[a + 1 :]:
            shared = set(ka[1]).intersection(kb[1])
            if ka[0] == kb[0] and shared:
                out.append((ka, kb))
                continue
            for g in shared:
                usable = snap.cluster.gpu_type_of_node(snap.cluster.gpus[g].node).usable_gib
                need = models[ka[0]].weights_gib / len(ka[1])
                need += models[kb[0]].weights_gib / len(kb[1])
                if need > usable:
                    out.append((ka, kb))
                    break
    return tuple(out)


@dataclass(frozen=True)
class WindowPlan:
    """A schedule of the window: option, run start per stage, and the loads it makes.

    Attributes:
        choice: stage uid -> index of its option.
        start: stage uid -> tick its run starts (after its load, if it needs one).
        loads: load -> tick it starts (loads no chosen option needs are absent).
    """

    choice: dict[int, int]
    start: dict[int, int]
    loads: dict[LoadKey, int]


def first_use(window: Window, plan: WindowPlan) -> dict[int, tuple[int, int]]:
    """Per GPU the plan uses: ``(tick, stage)`` of the first run or load on it.

    A load counts for the stage that is first to use it.
    """
    by_uid = window.index()
    first: dict[int, tuple[int, int]] = {}

    def claim(g: int, t: int, uid: int) -> None:
        if g not in first or (t, uid) < first[g]:
            first[g] = (t, uid)

    owner: dict[LoadKey, tuple[int, int]] = {}
    for uid, i in plan.choice.items():
        s = by_uid[uid]
        for g in s.options[i].gpus:
            claim(g, plan.start[uid], uid)
        key = s.load_key(i) if window.shared_loads else None
        if key is not None and (key not in owner or plan.start[uid] < owner[key][0]):
            owner[key] = (plan.start[uid], uid)
    for key, t in plan.loads.items():
        if key in owner:
            for g in key[1]:
                claim(g, t, owner[key][1])
    return first


def starts_now(window: Window, plan: WindowPlan) -> list[tuple[int, int]]:
    """``(uid, option)`` of the ready stages to launch now; the rest is planned again.

    A ready stage starts now when every GPU of its set is free now and the stage (or the
    load it is first to use) is the first thing the plan puts on each of them: launching
    it early then only frees time for what follows, so the plan stays valid whatever
    slack the solver left before it.
    """
    by_uid = window.index()
    first = first_use(window, plan)
    out = []
    for uid, i in sorted(plan.choice.items()):
        s = by_uid[uid]
        gpus = s.options[i].gpus
        if s.ready and all(window.free[g] == 0 and first[g][1] == uid for g in gpus):
            out.append((uid, i))
    return out
