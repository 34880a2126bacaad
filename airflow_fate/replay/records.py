"""What a replay knows of past DAG runs.

`RunSource` is what the database holds about one DAG run (filled by `replay.reading`);
`PastRun` is the same run as the replay uses it: each stage's last try with its stage
parents, its metadata and what it measured. Pure data, no Airflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from airflow_fate.executor.layout import TaskNode
from airflow_fate.executor.store import PlacementRow
from airflow_fate.operators.metadata import StageMetadata

QueueKey = tuple[str, int, int]
"""A try as Airflow's task tables key it: ``(task_id, map_index, try_number)``."""


@dataclass(frozen=True)
class RunSource:
    """One DAG run as stored.

    Attributes:
        dag_id, run_id: the run.
        start: when Airflow started the run (``dag_run.start_date``), None if it never did.
        tasks: the tasks of the DAG version the run used (serialized DAG).
        rows: its ``fate_placement`` rows (every try, CPU tasks included).
        queued: when Airflow queued each try (``queued_dttm``), where known.
    """

    dag_id: str
    run_id: str
    start: datetime | None
    tasks: tuple[TaskNode, ...]
    rows: tuple[PlacementRow, ...]
    queued: Mapping[QueueKey, datetime] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Measured:
    """What the device worker measured for a stage (seconds) and what it found warm."""

    load_s: float
    prefill_s: float
    decode_s: float
    model_warm: bool
    prefix_warm: bool

    @property
    def device_s(self) -> float:
        """Seconds of device work: load, prefill and decode."""
        return self.load_s + self.prefill_s + self.decode_s


@dataclass(frozen=True, slots=True)
class StageRun:
    """One stage of a past run: its last try.

    Attributes:
        stage_id: the task id, ``task[i]`` for instance ``i`` of a mapped task.
        metadata: the stage as the planner saw it (``executor_config["fate"]``).
        parents: stage ids of the nearest stages upstream that ran.
        row: its placement (policy, node, GPUs, launcher, predicted breakdown, times).
        queued: when Airflow queued the try (None when the database does not say).
        measured: what the stage measured.
    """

    stage_id: str
    metadata: StageMetadata
    parents: tuple[str, ...]
    row: PlacementRow
    queued: datetime | None
    measured: Measured

    @property
    def launched(self) -> datetime:
        return self.row.start

    @property
    def exited(self) -> datetime:
        """When the executor saw the task process end: the GPUs were held until then."""
        return self.row.start + timedelta(seconds=self.row.run_s or 0.0)


@dataclass(frozen=True)
class PastRun:
    """A finished DAG run ready to replay.

    Attributes:
        dag_id, run_id: the run.
        start: when Airflow started it (its workflow's arrival).
        stages: its stages in launch order.
        earlier_tries: GPU tries before each stage's last one (not replayed).
    """

    dag_id: str
    run_id: str
    start: datetime
    stages: tuple[StageRun, ...]
    earlier_tries: int = 0

    @property
    def key(self) -> str:
        """The run's workflow id in the replayed workload."""
        return f"{self.dag_id}/{self.run_id}"

    @property
    def policies(self) -> frozenset[str]:
        return frozenset(s.row.policy for s in self.stages)
