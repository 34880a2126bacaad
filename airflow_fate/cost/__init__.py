"""State-conditional cost model."""

from __future__ import annotations

from airflow_fate.cost.estimator import CostModel, Rates, shard_efficiency

__all__ = ["CostModel", "Rates", "shard_efficiency"]
