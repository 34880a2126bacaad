"""Factories for executor unit tests: task nodes, stage metadata and a frontier planner."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_fate.cost.estimator import CostModel
from airflow_fate.executor.frontier import FrontierPlanner
from airflow_fate.executor.layout import TaskNode
from airflow_fate.launch.types import TaskKey
from airflow_fate.operators.metadata import StageMetadata
from airflow_fate.planner.registry import make_policy
from tests.conftest import make_catalog, make_cluster


def meta(model: str = "small-lm", **kw: Any) -> dict[str, Any]:
    """``executor_config`` of a stage task."""
    fields: dict[str, Any] = {"model": model, "input_tokens": 1000, "output_tokens": 100}
    fields.update(kw)
    return {"fate": StageMetadata(**fields).model_dump(mode="json", exclude_none=True)}


def node(task_id: str, *upstream: str, config: dict[str, Any] | None = None) -> TaskNode:
    return TaskNode(task_id, tuple(upstream), config)


def key(task_id: str, run_id: str = "r1", try_number: int = 1, dag_id: str = "d") -> TaskKey:
    return TaskKey(dag_id, task_id, run_id, try_number)


def planner_for(policy: str = "greedy-eft", nodes: list[tuple[str, str, int]] | None = None):
    cluster = make_cluster(nodes or [("n0", "big", 2), ("n1", "big", 2)])
    catalog = make_catalog()
    return FrontierPlanner(cluster, catalog, make_policy(policy), CostModel(cluster, catalog))


@pytest.fixture
def catalog():
    return make_catalog()


@pytest.fixture
def cluster():
    return make_cluster([("n0", "big", 2), ("n1", "big", 2)])
