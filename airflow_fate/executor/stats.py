"""`ExecutorStats`: the executor's decisions and the devices' reports as Airflow metrics.

One mapping from what the executor sees to numbers, feeding both Airflow's metrics (StatsD,
OpenTelemetry or Datadog, as ``[metrics]`` configures them) and the ``metrics.json``
summary in the run dir, so the two never disagree. Every name starts with ``fate.``
(Airflow adds ``[metrics] statsd_prefix`` or the OpenTelemetry prefix in front) and
carries a ``policy`` tag, which backends with tags keep (OpenTelemetry, Datadog, StatsD
with ``statsd_influxdb_enabled``) and plain StatsD drops.

Placements are counted as the planner saw them when it launched the stage (warm: its
model was expected resident on the chosen GPUs); model loads, load seconds and evictions
as the device reported them in the stage's ``fate_measured`` XCom. A cold placement
without a measured load, or the reverse, is the cost model's residency view being wrong.

Airflow is imported only by `airflow_metrics`, so the mapping is testable without it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Protocol

from airflow_fate.executor.frontier import Placement
from airflow_fate.spine.dispatch import PlannerLog

log = logging.getLogger(__name__)

DECISION_TIME = "fate.decision_time"
PLACEMENTS_WARM = "fate.placements.warm"
PLACEMENTS_COLD = "fate.placements.cold"
PLACEMENTS_PREFIX_REUSE = "fate.placements.prefix_reuse"
MODEL_LOADS = "fate.model_loads"
MODEL_LOAD_TIME = "fate.model_load_time"
EVICTIONS = "fate.evictions"
SOLVER_FALLBACKS = "fate.solver_fallbacks"
QUEUED_STAGES = "fate.queued_stages"
GPUS_BUSY = "fate.gpus_busy"

METRIC_NAMES = (
    DECISION_TIME,
    PLACEMENTS_WARM,
    PLACEMENTS_COLD,
    PLACEMENTS_PREFIX_REUSE,
    MODEL_LOADS,
    MODEL_LOAD_TIME,
    EVICTIONS,
    SOLVER_FALLBACKS,
    QUEUED_STAGES,
    GPUS_BUSY,
)
"""Every metric `ExecutorStats` emits (the README's Metrics section lists them)."""


class MetricSink(Protocol):
    """The three calls of Airflow's ``stats`` module the executor uses."""

    def incr(self, stat: str, count: int, *, tags: dict[str, str]) -> None: ...

    def gauge(self, stat: str, value: float, *, tags: dict[str, str]) -> None: ...

    def timing(self, stat: str, dt: timedelta, *, tags: dict[str, str]) -> None: ...


class AirflowMetrics:
    """`MetricSink` over the scheduler's ``airflow.observability.stats``.

    That module is the one `BaseExecutor.__init__` and the scheduler initialise from
    ``[metrics]``; the Task SDK's ``airflow.sdk.observability.stats`` (which the deprecated
    ``airflow.stats.Stats`` points to) is a separate copy that the scheduler may never
    initialise, and would drop everything sent through it.
    """

    def __init__(self) -> None:
        from airflow.observability import stats

        self._stats = stats

    def incr(self, stat: str, count: int, *, tags: dict[str, str]) -> None:
        self._stats.incr(stat, count, tags=tags)

    def gauge(self, stat: str, value: float, *, tags: dict[str, str]) -> None:
        self._stats.gauge(stat, value, tags=tags)

    def timing(self, stat: str, dt: timedelta, *, tags: dict[str, str]) -> None:
        self._stats.timing(stat, dt, tags=tags)


class ExecutorStats:
    """Counters of one scheduler run, each change also sent to a `MetricSink`."""

    def __init__(self, sink: MetricSink, policy: str) -> None:
        self._sink = sink
        self._tags = {"policy": policy}
        self.decisions = 0
        self.decision_ms_total = 0.0
        self.decision_ms_max = 0.0
        self.fallbacks = 0
        self.placements_warm = 0
        self.placements_cold = 0
        self.placements_prefix_reuse = 0
        self.model_loads = 0
        self.load_s = 0.0
        self.evictions = 0

    def decided(self, planner_log: PlannerLog) -> None:
        """Take the planner decisions made since the last call from the planner's log.

        The log is the `Dispatcher`'s record of every ``plan`` call; reading it here
        keeps one account of decision times and solver fallbacks.
        """
        for ms in planner_log.plan_ms[self.decisions :]:
            self.decisions += 1
            self.decision_ms_total += ms
            self.decision_ms_max = max(self.decision_ms_max, ms)
            self._sink.timing(DECISION_TIME, timedelta(milliseconds=ms), tags=self._tags)
        new_fallbacks = planner_log.fallbacks - self.fallbacks
        if new_fallbacks > 0:
            self.fallbacks = planner_log.fallbacks
            self._sink.incr(SOLVER_FALLBACKS, new_fallbacks, tags=self._tags)

    def placed(self, placement: Placement) -> None:
        """A stage was launched on its GPUs: warm or cold, reusing a prefix or not."""
        if placement.predicted.load > 0:
            self.placements_cold += 1
            self._sink.incr(PLACEMENTS_COLD, 1, tags=self._tags)
        else:
            self.placements_warm += 1
            self._sink.incr(PLACEMENTS_WARM, 1, tags=self._tags)
        if placement.reused_prefix_tokens > 0:
            self.placements_prefix_reuse += 1
            self._sink.incr(PLACEMENTS_PREFIX_REUSE, 1, tags=self._tags)

    def ended(self, measured: Mapping[str, Any] | None) -> None:
        """A stage's device report (its ``fate_measured`` XCom): loads and evictions.

        None (a CPU task, or a stage that failed before reporting) counts nothing.
        """
        if measured is None or "failure" in measured:  # failed on its device: no timings
            return
        warm = measured.get("model_warm")
        load_s = measured.get("load_s", 0.0)
        evicted = measured.get("evicted", [])
        if not (
            isinstance(warm, bool) and isinstance(load_s, int | float) and isinstance(evicted, list)
        ):
            log.warning(
                "fate_measured without model_warm/load_s/evicted, not counted: %s", measured
            )
            return
        if not warm:
            self.model_loads += 1
            self.load_s += float(load_s)
            self._sink.incr(MODEL_LOADS, 1, tags=self._tags)
            self._sink.timing(MODEL_LOAD_TIME, timedelta(seconds=float(load_s)), tags=self._tags)
        if evicted:
            self.evictions += len(evicted)
            self._sink.incr(EVICTIONS, len(evicted), tags=self._tags)

    def occupancy(self, queued_stages: int, gpus_busy: int) -> None:
        """Gauges after a heartbeat: stages waiting for a GPU, GPUs running a stage."""
        self._sink.gauge(QUEUED_STAGES, queued_stages, tags=self._tags)
        self._sink.gauge(GPUS_BUSY, gpus_busy, tags=self._tags)

    def summary(self, *, tasks_launched: int, overhead_s: float) -> dict[str, int | float]:
        """The ``metrics.json`` document: these counters plus the executor's own overhead."""
        return {
            "tasks_launched": tasks_launched,
            "overhead_ms_total": round(overhead_s * 1000, 3),
            "overhead_ms_per_task": round(overhead_s * 1000 / max(tasks_launched, 1), 3),
            "plan_calls": self.decisions,
            "plan_ms_total": round(self.decision_ms_total, 3),
            "plan_ms_max": round(self.decision_ms_max, 3),
            "fallbacks": self.fallbacks,
            "placements_warm": self.placements_warm,
            "placements_cold": self.placements_cold,
            "placements_prefix_reuse": self.placements_prefix_reuse,
            "model_loads": self.model_loads,
            "load_s": round(self.load_s, 3),
            "evictions": self.evictions,
        }
