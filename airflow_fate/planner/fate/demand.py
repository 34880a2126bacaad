"""Observed demand per model: how fast each model's stages arrive, how long they run.

FATE's residency term values a model copy by the stages that will use it, including
those of workflows not arrived yet. This keeps running counts over every workflow seen
(all of its stages, whether ready or not): rate = stages / elapsed time since the first
arrival (at least ``rate_floor_s``), and the mean warm run at each stage's fastest
layout. Incremental: each workflow is counted once, when first seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from airflow_fate.cost.estimator import CostModel
from airflow_fate.state.cluster_state import Snapshot


@dataclass
class DemandRates:
    counts: dict[str, int] = field(default_factory=dict)
    run_sums: dict[str, float] = field(default_factory=dict)
    examples: dict[str, int] = field(default_factory=dict)
    seen: set[int] = field(default_factory=set)
    first_arrival: float | None = None
    _warm: dict[tuple[str, int, int, int, int, int], float] = field(default_factory=dict)

    def update(
        self, snap: Snapshot, cost: CostModel, rate_floor_s: float
    ) -> dict[str, tuple[float, float, int]]:
        """Count newly arrived workflows; return model -> (rate /s, mean run s, example)."""
        graph = snap.graph
        for wf, t in snap.arrived.items():
            if wf in self.seen:
                continue
            self.seen.add(wf)
            self.first_arrival = t if self.first_arrival is None else min(self.first_arrival, t)
            for uid in graph.workflows[wf].stages:
                stage = graph.stages[uid]
                key = (
                    stage.model,
                    stage.input_tokens,
                    stage.output_tokens,
                    stage.prefix_tokens,
                    stage.min_shards,
                    stage.max_shards,
                )
                run = self._warm.get(key)
                if run is None:
                    run = min(
                        (
                            cost.warm_time(stage, n, ks[0])
                            for n, ks in enumerate(cost.degrees_by_node(stage))
                            if ks
                        ),
                        default=0.0,
                    )
                    self._warm[key] = run
                self.counts[stage.model] = self.counts.get(stage.model, 0) + 1
                self.run_sums[stage.model] = self.run_sums.get(stage.model, 0.0) + run
                self.examples.setdefault(stage.model, uid)
        if self.first_arrival is None:
            return {}
        elapsed = max(snap.now - self.first_arrival, rate_floor_s)
        return {
            m: (n / elapsed, self.run_sums[m] / n, self.examples[m]) for m, n in self.counts.items()
        }

    def mean_runs(self) -> dict[str, float]:
        """Per model, the mean warm run (s) of its stages seen so far at their fastest
        layouts."""
        return {m: self.run_sums[m] / n for m, n in self.counts.items()}
