"""What `FateExecutor.start` builds from `FateSettings`: inputs, planner, store, launchers.

Kept apart from the executor class so that the executor's import stays cheap (the API
server instantiates executors only to read logs) and everything heavy (OR-Tools via the
policy registry, the Kubernetes client, SQLAlchemy engines) happens in ``start``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy import Engine, create_engine

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.loaders import load_models
from airflow_fate.domain.models import ModelCatalog
from airflow_fate.executor.frontier import FrontierPlanner
from airflow_fate.executor.settings import FateSettings
from airflow_fate.executor.store import FateStore
from airflow_fate.launch.backends import PlacementMapper, build_backend
from airflow_fate.launch.processes import TaskProcesses
from airflow_fate.launch.types import TaskLauncher
from airflow_fate.planner.policy import Policy
from airflow_fate.planner.registry import make_policy


@dataclass
class FateRuntime:
    """Everything the executor drives, built once per scheduler run."""

    settings: FateSettings
    cluster: Cluster
    catalog: ModelCatalog
    planner: FrontierPlanner
    store: FateStore
    launcher: TaskLauncher
    placement: PlacementMapper
    cpu: TaskProcesses
    run_dir: Path
    airflow_engine: Engine
    """The Airflow metadata database (task states, XComs, serialized DAGs)."""


def configured_policy(settings: FateSettings) -> Policy:
    """The policy, with the configured horizon and time limit for FATE policies."""
    policy = make_policy(settings.policy, settings.seed)
    config = getattr(policy, "config", None)
    if config is not None and hasattr(config, "horizon"):
        changes: dict[str, float | int] = {}
        if settings.horizon is not None:
            changes["horizon"] = settings.horizon
        if settings.planner_time_limit_s is not None:
            changes["time_limit_s"] = settings.planner_time_limit_s
        if changes:
            policy.config = replace(config, **changes)  # type: ignore[attr-defined]
    return policy


CONNECT_TIMEOUT_S = 5
"""Seconds a PostgreSQL connection attempt may take before it counts as refused."""


def store_engine(url: str) -> Engine:
    """An engine for the ``fate_*`` tables; SQLite waits for Airflow's writers."""
    if url.startswith("sqlite"):
        return create_engine(url, connect_args={"timeout": 30}, pool_pre_ping=True)
    # a database that accepts connections but never answers must not hang the scheduler
    connect_args = {"connect_timeout": CONNECT_TIMEOUT_S} if url.startswith("postgres") else {}
    return create_engine(
        url, pool_size=2, max_overflow=2, pool_pre_ping=True, connect_args=connect_args
    )


def build_runtime(settings: FateSettings, metadata_db_url: str, airflow_home: Path) -> FateRuntime:
    """Load the inputs and build planner, store and launchers (nothing started yet).

    Raises:
        InputError: a file named in ``[fate]`` is missing or invalid.
        KeyError: an unknown policy name.
    """
    run_dir = settings.run_dir or airflow_home / "fate"
    setup = build_backend(settings, run_dir)
    cluster = setup.cluster
    catalog = load_models(settings.models, cluster)
    planner = FrontierPlanner(
        cluster,
        catalog,
        configured_policy(settings),
        CostModel(cluster, catalog),
        hosting=setup.hosting,
    )
    airflow_engine = store_engine(metadata_db_url)
    store = FateStore(store_engine(settings.store_conn) if settings.store_conn else airflow_engine)
    return FateRuntime(
        settings=settings,
        cluster=cluster,
        catalog=catalog,
        planner=planner,
        store=store,
        launcher=setup.launcher,
        placement=setup.placement,
        cpu=TaskProcesses(run_dir / "cpu"),
        run_dir=run_dir,
        airflow_engine=airflow_engine,
    )
