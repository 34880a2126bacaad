"""The simulator's `StageTiming` for a replay: calibrated device time, Airflow's as measured.

A started stage runs for what the calibrated cost model says in the replayed state
(warm or cold, prefix reused or not, where its inputs are), plus its task process
overhead as measured; it may be planned only after its release delay (`replay.workload`).
It also notes which stages reused a prefix, a per-stage fact `RunResult` does not keep.
Use one per simulation.
"""

from __future__ import annotations

from collections.abc import Mapping

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.graph import StageInfo
from airflow_fate.replay.workload import StageKey, StageTimes
from airflow_fate.sim.timing import ActualRun
from airflow_fate.state.cluster_state import Snapshot


class MeasuredTiming:
    """See the module docstring.

    Args:
        cost: the calibrated cost model.
        times: each stage's release delay and overhead.
    """

    delays_release = True

    def __init__(self, cost: CostModel, times: Mapping[StageKey, StageTimes]) -> None:
        self.cost = cost
        self.times = times
        self.prefix_reused: set[StageKey] = set()

    def release_delay(self, stage: StageInfo) -> float:
        return self.times[(stage.workflow_id, stage.stage_id)].release_s

    def actual(self, stage: StageInfo, gpus: tuple[int, ...], snap: Snapshot) -> ActualRun:
        key = (stage.workflow_id, stage.stage_id)
        if self.cost.reused_tokens(stage, gpus, snap):
            self.prefix_reused.add(key)
        return ActualRun(self.cost.run_cost(stage, gpus, snap), self.times[key].overhead_s)
