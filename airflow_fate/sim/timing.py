"""How long a simulated stage really runs, and when it may be planned.

Policies plan on the cost model's estimates; the simulator then needs each started
stage's *actual* seconds, and may need to hold a ready stage back from planning for a
while. A `StageTiming` answers both, so the same event loop serves two purposes:

- `NoisyTiming` (the default): the state-conditional estimate at start times one seeded
  lognormal factor per stage, and no hold-back. What ``simulate`` and ``bench`` use.
- a replay of a past Airflow run (`airflow_fate.replay.timing`): calibrated device
  seconds plus the seconds Airflow itself spent around each stage, as measured.

A *release delay* models an orchestrator between "all parents finished" and "the stage
may be placed": in Airflow, the scheduler queues a task some time after its upstream
tasks end (CPU tasks in between, its own loop), and the executor only plans queued
tasks. An *overhead* is time a stage's GPUs stay held beyond its load, input, prefill
and decode (an Airflow task process starting and exiting around the stage); it is not
part of the placement's breakdown.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Protocol

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.graph import StageInfo
from airflow_fate.domain.plan import StageCost
from airflow_fate.state.cluster_state import Snapshot


@dataclass(frozen=True, slots=True)
class ActualRun:
    """What a started stage really costs.

    Attributes:
        cost: its actual breakdown (``wait`` 0).
        overhead: seconds its GPUs are held beyond ``cost.run``.
    """

    cost: StageCost
    overhead: float = 0.0

    @property
    def held_s(self) -> float:
        """Seconds from start until the stage's GPUs are free again."""
        return self.cost.run + self.overhead


class StageTiming(Protocol):
    """The simulator's source of actual stage times and release delays."""

    @property
    def delays_release(self) -> bool:
        """Whether any stage has a release delay (False skips the bookkeeping)."""
        ...

    def release_delay(self, stage: StageInfo) -> float:
        """Seconds from the stage becoming ready until it may be planned."""
        ...

    def actual(self, stage: StageInfo, gpus: tuple[int, ...], snap: Snapshot) -> ActualRun:
        """The stage's actual run on ``gpus``, starting in the state ``snap`` shows."""
        ...


class NoisyTiming:
    """Estimate at start times ``exp(N(0, noise))``, one draw per start in start order.

    A load that waits for a fetch still bringing its model to the node (`NodeState.fills`)
    ends when that fetch really ends, as it reads the same bytes: only its own read is
    drawn, not the wait. The fetch's actual end is known once the stage that started it
    has drawn its load.

    Args:
        cost: the cost model whose estimate is the mean.
        noise: lognormal sigma (0: actual = estimate).
        seed: seed of the draws.
    """

    delays_release = False

    def __init__(self, cost: CostModel, noise: float, seed: int) -> None:
        self.cost = cost
        self.noise = noise
        self._rng = random.Random(seed)
        self._fetch_ends: dict[tuple[int, str], float] = {}

    def release_delay(self, stage: StageInfo) -> float:
        return 0.0

    def actual(self, stage: StageInfo, gpus: tuple[int, ...], snap: Snapshot) -> ActualRun:
        est = self.cost.run_cost(stage, gpus, snap)
        factor = math.exp(self._rng.gauss(0.0, self.noise)) if self.noise > 0 else 1.0
        return ActualRun(
            StageCost(
                wait=0.0,
                load=self._load(stage, gpus, snap, est.load, factor),
                input=est.input * factor,
                prefill=est.prefill * factor,
                decode=est.decode * factor,
            )
        )

    def _load(
        self, stage: StageInfo, gpus: tuple[int, ...], snap: Snapshot, est: float, factor: float
    ) -> float:
        if est <= 0.0:
            return 0.0
        key = (snap.cluster.gpus[gpus[0]].node, stage.model)
        if not snap.nodes[key[0]].cached(stage.model):  # this load fetches: its end is the fill's
            self._fetch_ends[key] = snap.now + est * factor
            return est * factor
        idle = self.cost.fetch_wait(stage.model, gpus, snap)
        fetch_end = self._fetch_ends.get(key)
        if fetch_end is None:
            return est * factor
        return max((est - idle) * factor, fetch_end - snap.now)
