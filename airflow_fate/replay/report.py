"""The replay's JSON document (``airflow-fate replay --json`` and the UI's API).

Seconds are rounded to milliseconds; ``delta`` is a policy's replay minus the measured
run (negative: less time, fewer loads, fewer prefix hits).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Figures(_Out):
    """Makespan and latencies of the chosen runs, and where their stages' time went."""

    makespan_s: float
    mean_latency_s: float
    p95_latency_s: float
    stages: int
    loads: int
    load_s: float
    wait_s: float
    prefix_hits: int


class Delta(_Out):
    """A replay's figures minus the measured ones (``makespan_pct``: relative makespan)."""

    makespan_s: float
    makespan_pct: float
    mean_latency_s: float
    p95_latency_s: float
    loads: int
    load_s: float
    wait_s: float
    prefix_hits: int


class PolicyRow(_Out):
    """One policy's replay: its figures and delta, or why it could not run the workload."""

    policy: str
    ran: bool
    """Whether this policy placed the measured run (its replay measures the cost model)."""
    figures: Figures | None = None
    delta: Delta | None = None
    error: str | None = None


class ModelError(_Out):
    """How far the replay of the policy that ran is from what was measured (percent)."""

    policy: str
    makespan_pct: float
    mean_latency_pct: float
    p95_latency_pct: float


class ReplayedRun(_Out):
    """A run in the replayed workload; ``chosen`` False for one that only shared the GPUs.

    ``dag_id`` and ``run_id`` are None where the caller may not see that DAG.
    """

    dag_id: str | None
    run_id: str | None
    chosen: bool
    arrival_s: float
    stages: int


class CalibrationFactor(_Out):
    """Measured over predicted seconds of one model on one GPU type (None: no sample)."""

    model: str
    gpu_type: str
    compute: float | None
    load: float | None
    stages: int


class ReplayReport(_Out):
    """The whole replay: what was measured, each policy's replay, and how it was built."""

    dag_ids: list[str]
    runs: list[ReplayedRun]
    ran: list[str]
    """The policies that placed the chosen runs (normally one)."""
    launcher: str
    measured: Figures
    rows: list[PolicyRow]
    model_error: ModelError | None
    calibration: list[CalibrationFactor]
    airflow_s: float
    """Seconds of Airflow's own time in the chosen runs' stages (release delays and task
    process overheads), replayed as measured under every policy."""
    notes: list[str]
