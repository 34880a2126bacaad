"""The `Policy` interface every scheduler implements (FATE and all baselines).

A policy is decide-only: ``plan(snapshot, cost)`` returns an immutable `Plan` and never
touches cluster state; the caller (simulator, live engine or Airflow executor) applies it.
A policy may keep private bookkeeping between calls (a round-robin pointer, a static
HEFT schedule); each run builds a fresh policy from its factory with the run's seed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.plan import Plan
from airflow_fate.state.cluster_state import Snapshot


class Policy(Protocol):
    """Decides where the ready frontier runs."""

    name: str

    def plan(self, snap: Snapshot, cost: CostModel) -> Plan:
        """Assign some (or all) of ``snap.frontier`` to GPU sets."""
        ...


PolicyFactory = Callable[[int], Policy]
"""Builds a fresh policy for one run from the run's seed."""
