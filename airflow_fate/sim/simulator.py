"""Discrete-event simulator: any `Policy` on a workload, with the shared state and costs.

The loop (the executor runs the same one on the wall clock):

1. Pop every event due at the current time (finishes before arrivals before wake-ups;
   ties by insertion sequence, so runs are deterministic) and apply it to `ClusterState`.
2. `Dispatcher.decide`: plan the ready frontier on a snapshot (timed), validate and
   reserve the plan.
3. Start every stage that now heads all its GPUs' queues on idle GPUs.

Policies plan on estimates; stages run on actuals: the state-conditional cost at the
moment the stage starts (residency, prefix KV and output locations as they are then),
times one lognormal factor per stage (``exp(N(0, sigma))``, seeded; sigma 0 = exact).
A `StageTiming` other than that default (`sim.timing`) can supply actuals and hold ready
stages back from planning for a while (a replay of an Airflow run does both).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.graph import WorkloadGraph
from airflow_fate.domain.models import ModelCatalog
from airflow_fate.domain.plan import DecisionRecord, StageCost
from airflow_fate.domain.workload import Workload
from airflow_fate.errors import UnrunStagesError
from airflow_fate.planner.policy import Policy
from airflow_fate.sim.timing import ActualRun, NoisyTiming, StageTiming
from airflow_fate.spine.dispatch import Dispatcher
from airflow_fate.spine.lower_bound import lower_bound
from airflow_fate.spine.metrics import Counters, PlacementRecord, RunResult, summarise
from airflow_fate.spine.unrun import unrun_message
from airflow_fate.state.cluster_state import ClusterState
from airflow_fate.state.hosting import Hosting

_FINISH, _ARRIVAL, _WAKE = 0, 1, 2


@dataclass
class _Run:
    """Bookkeeping of one started stage."""

    start: float
    actual: StageCost
    record: DecisionRecord | None


@dataclass
class Simulation:
    """One simulated run. Build, then `run()` once."""

    cluster: Cluster
    catalog: ModelCatalog
    workload: Workload
    policy: Policy
    seed: int = 0
    noise: float = 0.15
    cost: CostModel | None = None
    progress: Callable[[int, int], None] | None = None
    hosting: Hosting = field(default_factory=Hosting)
    """How the launcher hosts stages (local workers, worker pods or a pod per stage)."""
    timing: StageTiming | None = None
    """Actual stage times and release delays (default: `NoisyTiming` of ``cost``)."""
    graph: WorkloadGraph = field(init=False)

    def __post_init__(self) -> None:
        self.graph = WorkloadGraph.from_workload(self.workload, self.catalog)
        if self.cost is None:
            self.cost = CostModel(self.cluster, self.catalog)
        self._cost: CostModel = self.cost
        self._state = ClusterState(self.cluster, self.catalog, self.graph, hosting=self.hosting)
        self._timing: StageTiming = self.timing or NoisyTiming(self._cost, self.noise, self.seed)
        self._release_at: dict[int, float] = {}
        self._heap: list[tuple[float, int, int, int]] = []
        self._seq = 0
        self._runs: dict[int, _Run] = {}
        self._dispatch = Dispatcher(self._state, self._cost, self.policy)
        self._placements: list[PlacementRecord] = []
        self._counters = Counters()
        self._done = 0

    def _push(self, t: float, kind: int, payload: int) -> None:
        heapq.heappush(self._heap, (t, kind, self._seq, payload))
        self._seq += 1

    def run(self) -> RunResult:
        for wf in self.graph.workflows:
            self._push(wf.arrival_s, _ARRIVAL, wf.index)
        total = len(self.graph.stages)
        while self._heap:
            now = self._heap[0][0]
            while self._heap and self._heap[0][0] == now:
                _, kind, _, payload = heapq.heappop(self._heap)
                if kind == _FINISH:
                    self._finish(payload, now)
                elif kind == _ARRIVAL:
                    self._dispatch.arrive(payload, now)
            touched = self._decide(now)
            self._start_ready(touched, now)
            if self.progress is not None:
                self.progress(self._done, total)
        if self._done != total:
            snap = self._state.snapshot()
            raise UnrunStagesError(unrun_message(self.policy.name, snap, self._cost))
        return summarise(
            policy=self.policy.name,
            seed=self.seed,
            graph=self.graph,
            cluster=self.cluster,
            placements=self._placements,
            plan_ms=self._dispatch.log.plan_ms,
            fallbacks=self._dispatch.log.fallbacks,
            counters=self._counters,
            lower_bound_s=lower_bound(self.graph, self.cluster, self._cost),
            launcher=self.hosting.mode,
        )

    # -- steps -----------------------------------------------------------------------

    def _decide(self, now: float) -> list[int]:
        """Plan the frontier; return the GPUs whose queues grew."""
        eligible = self._released(now) if self._timing.delays_release else None
        plan = self._dispatch.decide(now, eligible)
        if plan is None:
            return []
        if plan.wake_at is not None and plan.wake_at > now:
            self._push(plan.wake_at, _WAKE, -1)
        return [g for a in plan.assignments for g in a.gpus]

    def _released(self, now: float) -> list[int] | None:
        """Ready stages whose release delay has passed (None: every ready stage).

        A stage's delay starts when it is first seen ready, which is the time it became
        ready: this runs after every batch of events. A wake-up is queued for its end.
        """
        held = False
        for uid in self._state.ready:
            at = self._release_at.get(uid)
            if at is None:
                at = now + self._timing.release_delay(self.graph.stages[uid])
                self._release_at[uid] = at
                if at > now:
                    self._push(at, _WAKE, -1)
            held = held or at > now
        if not held:
            return None
        return sorted(u for u in self._state.ready if self._release_at[u] <= now)

    def _start_ready(self, gpus: list[int] | tuple[int, ...], now: float) -> None:
        for uid in self._dispatch.startable(gpus):
            self._start(uid, now)

    def _start(self, uid: int, now: float) -> None:
        stage = self.graph.stages[uid]
        gpus = self._state.placement_of(uid)
        assert gpus is not None
        snap = self._state.snapshot()
        run: ActualRun = self._timing.actual(stage, gpus, snap)
        actual = run.cost
        reused = self._cost.reused_tokens(stage, gpus, snap)
        effects = self._dispatch.started(uid, now)
        c = self._counters
        if actual.load > 0:
            c.model_loads += 1
            c.load_s += actual.load
        c.evictions += effects.evictions
        c.pod_starts += effects.pod_started
        if reused:
            c.prefix_hits += 1
        c.bytes_moved += sum(
            self.graph.stages[p].output_bytes
            for p in stage.parents
            if not set(self._state.placement_of(p) or ()).intersection(gpus)
        )
        self._runs[uid] = _Run(
            start=now, actual=actual, record=self._dispatch.records.pop(uid, None)
        )
        self._push(now + run.held_s, _FINISH, uid)

    def _finish(self, uid: int, now: float) -> None:
        run = self._runs.pop(uid)
        gpus = self._dispatch.finished(uid, now, now - run.start)
        self._done += 1
        self._placements.append(
            PlacementRecord(
                stage=uid,
                gpus=gpus,
                start_s=run.start,
                end_s=now,
                actual=run.actual,
                record=run.record,
            )
        )
        self._start_ready(gpus, now)


def simulate(
    cluster: Cluster,
    catalog: ModelCatalog,
    workload: Workload,
    policy: Policy,
    seed: int = 0,
    noise: float = 0.15,
    progress: Callable[[int, int], None] | None = None,
    cost: CostModel | None = None,
    hosting: Hosting | None = None,
    timing: StageTiming | None = None,
) -> RunResult:
    """Run ``policy`` on ``workload`` and return its metrics and placements.

    ``cost`` replaces the profile cost model (e.g. one with learned corrections);
    ``hosting`` models the launcher (default: local device workers; see `Hosting`);
    ``timing`` replaces the noisy actuals (``noise`` is then unused and ``seed`` only
    labels the result; see `sim.timing`).
    """
    return Simulation(
        cluster,
        catalog,
        workload,
        policy,
        seed=seed,
        noise=noise,
        cost=cost,
        progress=progress,
        hosting=hosting or Hosting(),
        timing=timing,
    ).run()
