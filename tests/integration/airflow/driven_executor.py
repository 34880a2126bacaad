"""The real `FateExecutor` driven the way Airflow's scheduler drives it, minus Airflow.

The executor (`start`, heartbeats, `sync`, the FATE policy, the ``fate_*`` store) is
real. Two things are stand-ins, so thousands of runs fit in a test: a launcher that
"runs" each task instantly (it reports running and success at the next poll), and
Airflow's database reads (the run's serialized tasks, the try's final state, which runs
are over), answered from the driver's own bookkeeping. Each DAG run's stage tasks are
queued one after another as the previous one succeeds.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.exc import OperationalError

from airflow_fate.domain.cluster import Cluster
from airflow_fate.executor import airflow_db, runtime
from airflow_fate.executor.layout import TaskNode
from airflow_fate.launch.backends import LauncherSetup, local_placement
from airflow_fate.launch.types import EventKind, LaunchEvent, LaunchRequest, TaskEvent, TaskKey
from airflow_fate.operators.metadata import StageMetadata
from airflow_fate.state.hosting import Hosting
from tests.conftest import make_catalog, make_cluster

DAG_ID = "rag"
TASKS = [
    TaskNode("embed", (), StageMetadata(model="embed", input_tokens=800).as_executor_config()),
    TaskNode(
        "answer",
        ("embed",),
        StageMetadata(model="small-lm", input_tokens=2000, output_tokens=200).as_executor_config(),
    ),
    TaskNode(
        "judge",
        ("answer",),
        StageMetadata(model="mid-lm", input_tokens=900, output_tokens=40).as_executor_config(),
    ),
]


class InstantLauncher:
    """A task launcher whose tasks run and succeed by the next poll."""

    keeps_tasks_on_close = False

    def __init__(self, cluster: Cluster) -> None:
        self._gpus = len(cluster.gpus)
        self._launched: list[TaskKey] = []
        self.launched_keys: list[TaskKey] = []
        self.launches = 0

    def start(self) -> None:
        pass

    def launch(self, request: LaunchRequest) -> None:
        self._launched.append(request.key)
        self.launched_keys.append(request.key)
        self.launches += 1

    def poll(self, timeout_s: float = 0.0) -> list[TaskEvent]:
        events: list[TaskEvent] = []
        for key in self._launched:
            events.append(LaunchEvent(EventKind.RUNNING, key, "instant", "local"))
            events.append(LaunchEvent(EventKind.SUCCEEDED, key, "instant", "local"))
        self._launched = []
        return events

    def cancel(self, key: TaskKey) -> None:
        pass

    def adopt(self, keys: Sequence[TaskKey]) -> list[TaskKey]:
        return []

    def live_devices(self) -> set[int]:
        return set(range(self._gpus))

    def held_models(self) -> None:
        return None

    def close(self, *, detach: bool = False) -> None:
        pass


@dataclass
class FakeAirflow:
    """The scheduler's side: runs, their next task, and what the database would say."""

    dag_version: uuid.UUID = field(default_factory=uuid.uuid4)
    next_task: dict[str, int] = field(default_factory=dict)
    finished: set[tuple[str, str]] = field(default_factory=set)
    started = 0
    down = False
    """Airflow's database is unreachable: every read raises, as SQLAlchemy's would."""
    refused_reads = 0

    def dag_run_tasks(self, engine: Any, dag_bag: Any, dag_id: str, run_id: str) -> list[TaskNode]:
        self._reachable()
        return list(TASKS)

    def read_outcome(self, engine: Any, key: TaskKey) -> airflow_db.Outcome:
        self._reachable()
        return airflow_db.Outcome(state="success", end=None, measured=None)

    def finished_runs(self, engine: Any, runs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        self._reachable()
        return {r for r in runs if r in self.finished}

    def _reachable(self) -> None:
        if self.down:
            self.refused_reads += 1
            raise OperationalError("SELECT ...", None, ConnectionRefusedError("database down"))

    def workload(self, run_id: str, index: int) -> Any:
        from airflow.executors.workloads import BundleInfo, ExecuteTask, TaskInstanceDTO

        task = TASKS[index]
        ti = TaskInstanceDTO(
            id=uuid.uuid4(),
            task_id=task.task_id,
            dag_id=DAG_ID,
            run_id=run_id,
            try_number=1,
            dag_version_id=self.dag_version,
            pool_slots=1,
            priority_weight=1,
            executor_config=dict(task.executor_config or {}),
        )
        return ExecuteTask(
            ti=ti,
            dag_rel_path=Path("rag.py"),
            token="t",
            bundle_info=BundleInfo(name="dags-folder"),
            log_path=None,
        )


@contextmanager
def driven_executor(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    store_conn: str | None = None,
    launcher_type: type[InstantLauncher] = InstantLauncher,
) -> Iterator[tuple[Any, FakeAirflow, Any]]:
    """A started `FateExecutor` (FATE policy) with its stand-ins; ended on exit.

    ``store_conn`` is the ``fate_*`` tables' database (default: SQLite under ``tmp_path``);
    ``launcher_type`` an `InstantLauncher` that runs some tries differently.
    """
    cluster = make_cluster([("n0", "big", 4), ("n1", "small", 2)])
    cluster_file, models_file = tmp_path / "cluster.yaml", tmp_path / "models.yaml"
    cluster_file.write_text(yaml.safe_dump(cluster.model_dump(mode="json")))
    models_file.write_text(yaml.safe_dump(make_catalog().model_dump(mode="json")))
    for option, value in {
        "AIRFLOW__FATE__CLUSTER": str(cluster_file),
        "AIRFLOW__FATE__MODELS": str(models_file),
        "AIRFLOW__FATE__POLICY": "fate",
        "AIRFLOW__FATE__RUN_DIR": str(tmp_path / "run"),
        "AIRFLOW__FATE__STORE_CONN": store_conn or f"sqlite:///{tmp_path / 'fate.db'}",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'airflow.db'}",
    }.items():
        monkeypatch.setenv(option, value)
    launcher = launcher_type(cluster)

    def backend(settings: Any, run_dir: Path) -> LauncherSetup:
        return LauncherSetup(launcher, local_placement(cluster), cluster, Hosting())

    fake = FakeAirflow()
    monkeypatch.setattr(runtime, "build_backend", backend)
    monkeypatch.setattr(airflow_db, "dag_run_tasks", fake.dag_run_tasks)
    monkeypatch.setattr(airflow_db, "read_outcome", fake.read_outcome)
    monkeypatch.setattr(airflow_db, "finished_runs", fake.finished_runs)
    monkeypatch.setattr("airflow_fate.executor.fate_executor.RECONCILE_EVERY_S", 0.0)

    from airflow_fate.executor import FateExecutor

    ex = FateExecutor()
    ex.start()
    try:
        yield ex, fake, launcher
    finally:
        ex.end()


def heartbeat(ex: Any, fake: FakeAirflow) -> None:
    """One scheduler loop: heartbeat, then act on the events as the scheduler would."""
    ex.heartbeat()
    for key, (state, info) in ex.get_event_buffer().items():
        if str(state) == "running":  # its success comes at a later heartbeat
            continue
        assert str(state) == "success", (key, state, info)
        done = TASKS[fake.next_task[key.run_id]].task_id == key.task_id
        if done:
            fake.next_task[key.run_id] += 1
            if fake.next_task[key.run_id] == len(TASKS):
                fake.finished.add((DAG_ID, key.run_id))
                del fake.next_task[key.run_id]
            else:
                ex.queue_workload(fake.workload(key.run_id, fake.next_task[key.run_id]), None)


def queue_new_runs(ex: Any, fake: FakeAirflow, in_flight: int, total: int) -> None:
    """Start runs (their first task queued) until ``in_flight`` are open or ``total`` began."""
    while len(fake.next_task) < in_flight and fake.started < total:
        run_id = f"run-{fake.started:05d}"
        fake.started += 1
        fake.next_task[run_id] = 0
        ex.queue_workload(fake.workload(run_id, 0), None)
