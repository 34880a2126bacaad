"""Measured calibration: how much slower or faster each model ran than the cost model said.

Per (model, GPU type), two factors over the replayed stages: compute = sum of measured
prefill + decode over the sum of the predicted, load = the same for model loads, over
stages where both the prediction and the device loaded (a stage predicted warm that
loaded anyway says nothing of load speed; as `cost.correction` rules). Plain ratios of
sums, not the online correction's decayed ones: a replay weighs every stage of the run
alike. The predictions are those stored with each placement, made by the executor's
cost model, so the replay must use the cluster and models files the executor used.
`CostModel`'s ``correction`` and ``load_correction`` apply the factors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.models import ModelCatalog
from airflow_fate.replay.records import PastRun
from airflow_fate.replay.report import CalibrationFactor
from airflow_fate.replay.runs import NotReplayableError


@dataclass
class _Sums:
    measured: float = 0.0
    predicted: float = 0.0

    def factor(self) -> float | None:
        if self.predicted <= 0 or self.measured <= 0:
            return None
        return self.measured / self.predicted


@dataclass
class _Pair:
    compute: _Sums = field(default_factory=_Sums)
    load: _Sums = field(default_factory=_Sums)
    stages: int = 0


@dataclass(frozen=True)
class Calibration:
    """Factors per ``(model, gpu_type)``; see the module docstring."""

    factors: tuple[CalibrationFactor, ...]

    def cost_model(self, cluster: Cluster, catalog: ModelCatalog) -> CostModel:
        compute = {(f.model, f.gpu_type): f.compute for f in self.factors if f.compute}
        load = {(f.model, f.gpu_type): f.load for f in self.factors if f.load}
        return CostModel(cluster, catalog, correction=compute, load_correction=load)


def calibrate(runs: Sequence[PastRun], cluster: Cluster) -> Calibration:
    """The factors measured in ``runs``.

    Raises:
        NotReplayableError: a stage ran on a node the cluster file does not have.
    """
    gpu_type = {n.name: n.gpu_type for n in cluster.nodes}
    pairs: dict[tuple[str, str], _Pair] = {}
    for run in runs:
        for s in run.stages:
            if s.row.node not in gpu_type:
                raise NotReplayableError(
                    f"run {run.key}: task {s.stage_id} ran on node {s.row.node!r}, which the "
                    f"cluster file does not have (nodes: {', '.join(sorted(gpu_type))})"
                )
            pair = pairs.setdefault((s.metadata.model, gpu_type[s.row.node]), _Pair())
            pair.stages += 1
            p = s.row.predicted
            pair.compute.measured += s.measured.prefill_s + s.measured.decode_s
            pair.compute.predicted += p.get("prefill", 0.0) + p.get("decode", 0.0)
            if p.get("load", 0.0) > 0 and s.measured.load_s > 0:
                pair.load.measured += s.measured.load_s
                pair.load.predicted += p["load"]
    return Calibration(
        tuple(
            CalibrationFactor(
                model=model,
                gpu_type=gtype,
                compute=_round(pair.compute.factor()),
                load=_round(pair.load.factor()),
                stages=pair.stages,
            )
            for (model, gtype), pair in sorted(pairs.items())
        )
    )


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)
