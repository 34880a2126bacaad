"""The live engine: the simulator's decision loop on the wall clock, stages run for real.

Same `Dispatcher`, `ClusterState`, `CostModel` and `summarise` as the simulator, so a
policy places stages identically and the result is the same JSON document, with measured
times instead of modelled ones. The loop:

1. Workflows arrive at their ``arrival_s`` (seconds since the run began).
2. `Dispatcher.decide` plans the ready frontier and reserves the plan.
3. Every reserved stage heading idle GPUs starts: the cost model's estimates are recorded,
   its request (`runtime.synthetic`, with its parents' real outputs) goes to the
   `StageLauncher`.
4. `StageLauncher.poll` waits (bounded by the next arrival or wake-up) for outcomes; a finish
   updates the state, the placements and, when learning, the online correction, which
   the next decision uses.

A failed stage frees its GPUs and its descendants are skipped (they pass through the
state with zero time, never launched); the run reports them and produces no `RunResult`.
Every wait is bounded: stages by their launcher timeout, the run by ``run_timeout_s``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from airflow_fate.cost.correction import CorrectionStore
from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.graph import WorkloadGraph
from airflow_fate.domain.models import ModelCatalog
from airflow_fate.domain.plan import DecisionRecord, StageCost
from airflow_fate.domain.workload import Workload
from airflow_fate.engine.calibration import CostSample
from airflow_fate.errors import UnrunStagesError
from airflow_fate.launch.types import (
    StageEvent,
    StageFailed,
    StageLaunch,
    StageLauncher,
    StageSucceeded,
    WorkerRestarted,
)
from airflow_fate.planner.policy import Policy
from airflow_fate.runtime.errors import StageError
from airflow_fate.runtime.protocol import FailureReason, ModelSource, StageRequest
from airflow_fate.runtime.synthetic import output_text, stage_request
from airflow_fate.spine.dispatch import Dispatcher
from airflow_fate.spine.lower_bound import lower_bound
from airflow_fate.spine.metrics import Counters, PlacementRecord, RunResult, summarise
from airflow_fate.spine.unrun import unrun_message
from airflow_fate.state.cluster_state import ClusterState, stage_label

_MAX_IDLE_WAIT_S = 1.0
"""Longest single wait for launcher events, so arrivals and the run deadline stay prompt."""

ModelResolver = Callable[[str], ModelSource]
"""Catalog model name -> its files; raises `StageError` when it cannot be found."""


@dataclass(frozen=True, slots=True)
class FailedStage:
    stage: str
    reason: FailureReason
    message: str


@dataclass(frozen=True, slots=True)
class StageNote:
    """A stage starting (``measured`` is None) or finishing, for a live progress display.

    Attributes:
        label: ``workflow/stage``.
        model: the catalog model it runs.
        gpus: the cluster GPU indices it holds.
        predicted: the corrected cost model's breakdown at its start.
        measured: what the worker measured, once it succeeded.
        model_warm: whether the model was resident (known once it succeeded).
        seconds: wall seconds from start to end, once it succeeded.
    """

    label: str
    model: str
    gpus: tuple[int, ...]
    predicted: StageCost
    measured: StageCost | None = None
    model_warm: bool | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class LiveOutcome:
    """What a live run produced.

    Attributes:
        result: the ``simulate``-format result; None when a stage failed.
        failed: stages that failed, with why.
        skipped: stages not run because an ancestor failed.
        samples: estimated vs measured seconds of every finished stage.
        worker_restarts: device workers replaced during the run.
        wall_s: seconds from start to the last outcome.
    """

    result: RunResult | None
    failed: list[FailedStage]
    skipped: list[str]
    samples: list[CostSample]
    worker_restarts: int
    wall_s: float


@dataclass
class _Running:
    uid: int
    start: float
    request: StageRequest
    profile: StageCost
    corrected: StageCost
    record: DecisionRecord | None


@dataclass
class LiveEngine:
    """One live run of ``policy`` on ``workload``. Build, then `run()` once.

    Args:
        resolve: catalog name -> `ModelSource` (`runtime.registry.resolve_model`).
        corrections: online correction store; its factors are used from the first
            decision, and updated as stages finish when ``learn`` is set.
        stage_timeout_s: a stage running longer fails (its worker is replaced).
        run_timeout_s: the whole run's limit; open stages then fail with ``timeout``.
    """

    cluster: Cluster
    catalog: ModelCatalog
    workload: Workload
    policy: Policy
    launcher: StageLauncher
    resolve: ModelResolver
    corrections: CorrectionStore = field(default_factory=CorrectionStore)
    learn: bool = True
    seed: int = 0
    stage_timeout_s: float = 600.0
    run_timeout_s: float = 3600.0
    progress: Callable[[int, int], None] | None = None
    notes: Callable[[StageNote], None] | None = None
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.graph = WorkloadGraph.from_workload(self.workload, self.catalog)
        self._state = ClusterState(self.cluster, self.catalog, self.graph)
        self._profile = CostModel(self.cluster, self.catalog)
        self._dispatch = Dispatcher(
            self._state, self.corrections.cost_model(self.cluster, self.catalog), self.policy
        )
        self._running: dict[str, _Running] = {}
        self._outputs: dict[int, str] = {}
        self._placements: list[PlacementRecord] = []
        self._counters = Counters()
        self._samples: list[CostSample] = []
        self._failed: list[FailedStage] = []
        self._skipped: list[str] = []
        self._doomed: set[int] = set()
        self._ended = 0
        self._restarts = 0
        self._t0 = 0.0

    # -- the loop --------------------------------------------------------------------

    def run(self) -> LiveOutcome:
        self._t0 = self.clock()
        arrivals = deque(sorted((wf.arrival_s, wf.index) for wf in self.graph.workflows))
        total = len(self.graph.stages)
        wake: float | None = None
        while self._ended < total:
            now = self._now()
            if now > self.run_timeout_s:
                self._abandon(now)
                break
            while arrivals and arrivals[0][0] <= now:
                self._dispatch.arrive(arrivals.popleft()[1], now)
            while True:  # skipped stages free their GPUs at once: decide again
                plan = self._dispatch.decide(now)
                if plan is not None and plan.wake_at is not None and plan.wake_at > now:
                    wake = plan.wake_at if wake is None else min(wake, plan.wake_at)
                if not self._start_ready(now):
                    break
            if self._ended >= total:
                break
            nxt = min(arrivals[0][0] if arrivals else float("inf"), wake or float("inf"))
            if not self._running and nxt == float("inf"):
                self._stalled()
            if wake is not None and wake <= now:
                wake = None
            wait = min(max(nxt - self._now(), 0.0), _MAX_IDLE_WAIT_S)
            for event in self.launcher.poll(wait):
                self._on_event(event)
            if self.progress is not None:
                self.progress(self._ended, total)
        return self._outcome()

    def _now(self) -> float:
        return self.clock() - self._t0

    def _start_ready(self, now: float) -> int:
        """Start every reserved stage that heads idle GPUs; how many started or skipped."""
        gpus = list(range(len(self.cluster.gpus)))
        count = 0
        while ready := self._dispatch.startable(gpus):
            for uid in ready:
                self._start(uid, now)
            count += len(ready)
        return count

    def _start(self, uid: int, now: float) -> None:
        stage = self.graph.stages[uid]
        gpus = self._state.placement_of(uid)
        assert gpus is not None
        label = stage_label(stage)
        if uid in self._doomed:
            self._dispatch.started(uid, now)
            self._dispatch.finished(uid, now, 0.0)
            self._skipped.append(label)
            self._ended += 1
            return
        snap = self._state.snapshot()
        profile = self._profile.run_cost(stage, gpus, snap)
        corrected = self._dispatch.cost.run_cost(stage, gpus, snap)
        record = self._dispatch.records.pop(uid, None)
        self._dispatch.started(uid, now)
        try:
            source = self.resolve(stage.model)
        except StageError as exc:
            self._end_failed(uid, now, label, exc.reason, exc.message, now)
            return
        parents = [self._outputs.get(p, "") for p in stage.parents]
        request = stage_request(stage, source, parents)
        self._running[label] = _Running(uid, now, request, profile, corrected, record)
        self.launcher.launch(StageLaunch(label, gpus, request, self.stage_timeout_s))
        if self.notes is not None:
            self.notes(StageNote(label, stage.model, gpus, corrected))

    # -- outcomes --------------------------------------------------------------------

    def _on_event(self, event: StageEvent) -> None:
        if isinstance(event, StageSucceeded):
            self._succeed(event)
        elif isinstance(event, StageFailed):
            self._fail(event.key, event.reason, event.message, self._now())
        elif isinstance(event, WorkerRestarted):
            self._restarts += 1

    def _succeed(self, event: StageSucceeded) -> None:
        run = self._running.pop(event.key, None)
        if run is None:
            return
        now = self._now()
        r = event.result
        stage = self.graph.stages[run.uid]
        gpus = self._dispatch.finished(run.uid, now, now - run.start)
        self._ended += 1
        measured = StageCost(
            wait=0.0,
            load=r.timing.load_s,
            input=0.0,
            prefill=r.timing.prefill_s,
            decode=r.timing.decode_s,
        )
        self._outputs[run.uid] = output_text(run.request, r)
        self._placements.append(
            PlacementRecord(run.uid, gpus, run.start, now, measured, run.record)
        )
        c = self._counters
        if not r.model_warm:
            c.model_loads += 1
            c.load_s += r.timing.load_s
        c.prefix_hits += int(r.prefix_warm)
        c.evictions += len(r.evicted)
        c.bytes_moved += sum(
            self.graph.stages[p].output_bytes
            for p in stage.parents
            if not set(self._state.placement_of(p) or ()).intersection(gpus)
        )
        gpu_type = self.cluster.nodes[self.cluster.gpus[gpus[0]].node].gpu_type
        label = stage_label(stage)
        self._samples.append(
            CostSample(label, stage.model, gpu_type, run.profile, run.corrected, measured)
        )
        self._learn(stage.model, gpu_type, run.profile, measured)
        if self.notes is not None:
            self.notes(
                StageNote(
                    label, stage.model, gpus, run.corrected, measured, r.model_warm, now - run.start
                )
            )

    def _learn(self, model: str, gpu_type: str, profile: StageCost, measured: StageCost) -> None:
        if not self.learn:
            return
        self.corrections.observe_stage(model, gpu_type, profile, measured)
        self._dispatch.cost = self.corrections.cost_model(self.cluster, self.catalog)

    def _fail(self, key: str, reason: FailureReason, message: str, now: float) -> None:
        run = self._running.pop(key, None)
        if run is not None:
            self._end_failed(run.uid, run.start, key, reason, message, now)

    def _end_failed(
        self, uid: int, start: float, label: str, reason: FailureReason, message: str, now: float
    ) -> None:
        """Free the stage's GPUs, record why it failed, and doom its descendants."""
        self._dispatch.finished(uid, now, now - start)
        self._ended += 1
        self._failed.append(FailedStage(label, reason, message))
        todo = list(self.graph.stages[uid].children)
        while todo:
            child = todo.pop()
            if child not in self._doomed:
                self._doomed.add(child)
                todo.extend(self.graph.stages[child].children)

    def _abandon(self, now: float) -> None:
        """The run's deadline passed: cancel what runs and fail everything open."""
        for key in list(self._running):
            self.launcher.cancel(key)
            self._fail(key, "timeout", f"run exceeded {self.run_timeout_s:g} s", now)
        done = {p.stage for p in self._placements}
        failed = {f.stage for f in self._failed} | set(self._skipped)
        for stage in self.graph.stages:
            label = stage_label(stage)
            if stage.uid not in done and label not in failed:
                self._failed.append(
                    FailedStage(label, "timeout", f"not run within {self.run_timeout_s:g} s")
                )

    def _stalled(self) -> None:
        raise UnrunStagesError(
            unrun_message(self.policy.name, self._state.snapshot(), self._profile)
        )

    def _outcome(self) -> LiveOutcome:
        wall = self._now()
        result = None
        if not self._failed and not self._skipped:
            result = summarise(
                policy=self.policy.name,
                seed=self.seed,
                graph=self.graph,
                cluster=self.cluster,
                placements=self._placements,
                plan_ms=self._dispatch.log.plan_ms,
                fallbacks=self._dispatch.log.fallbacks,
                counters=self._counters,
                lower_bound_s=lower_bound(self.graph, self.cluster, self._dispatch.cost),
            )
        return LiveOutcome(
            result=result,
            failed=list(self._failed),
            skipped=list(self._skipped),
            samples=list(self._samples),
            worker_restarts=self._restarts,
            wall_s=wall,
        )
