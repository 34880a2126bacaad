"""`FateSettings`: the ``[fate]`` section of ``airflow.cfg`` (env ``AIRFLOW__FATE__*``).

Read once, in `FateExecutor.start`, and passed down; nothing below reads configuration
itself. Example::

    [core]
    executor = airflow_fate.executor.FateExecutor

    [fate]
    policy = fate
    cluster = /etc/fate/cluster.yaml
    models = /etc/fate/models.yaml
    inventory = /etc/fate/inventory.yaml     # local launcher: cluster GPU -> device
    launcher = local                         # or kubernetes
    planner_time_limit_s = 0.5
    horizon = 2
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from airflow_fate.domain.loaders import format_loc
from airflow_fate.errors import InputError
from airflow_fate.launch.backends import cluster_file
from airflow_fate.state.hosting import DEFAULT_WORKER_IDLE_S

SECTION = "fate"


class FateSettings(BaseModel):
    """Executor settings.

    Attributes:
        policy: planner policy name (`airflow-fate policies`).
        seed: seed of randomised policies and CP-SAT.
        cluster: ``cluster.yaml``, the planner's view of the GPUs. Required, except with
            the Kubernetes launcher and no ``kubernetes_devices``: the cluster is then
            discovered from the API (GPU Feature Discovery node labels and the
            ``kubernetes_inventory`` ConfigMap) and ``cluster`` must be unset.
        models: ``models.yaml``, the model catalog (rates, sizes, files).
        inventory: local launcher: ``inventory.yaml`` binding cluster GPUs to this
            machine's devices (default: ``nvidia-smi``, else virtual CPU devices).
        launcher: ``local`` (processes and device workers on this machine) or
            ``kubernetes`` (stage pods pinned to the planned node and GPUs).
        kubernetes_mode: kubernetes launcher: ``worker-pods`` (one long-lived pod per GPU
            set runs a device worker and a task agent, so models and prefix KV stay warm
            from one stage to the next) or ``pod-per-stage`` (a fresh pod per task try,
            as Airflow's KubernetesExecutor; nothing stays on the GPUs).
        kubernetes_settings: kubernetes launcher: ``launcher.yaml``.
        kubernetes_devices: kubernetes launcher: ``devices.yaml`` (GPU UUIDs per node);
            unset = discover the inventory from the cluster.
        kubernetes_inventory: kubernetes launcher, discovery: the inventory ConfigMap
            (keys ``devices.yaml`` and ``cluster.yaml``) in the stage pods' namespace.
        planner_time_limit_s: CP-SAT time limit per decision (FATE policies).
        horizon: look-ahead depth in DAG hops (FATE policies).
        run_dir: local launcher: worker sockets, pid files and logs
            (default ``$AIRFLOW_HOME/fate``).
        cpu_slots: tasks without stage metadata that may run at once.
        stage_timeout_s: how long a stage may run on its device.
        worker_idle_s: a device worker with no stage for this long exits.
        detach_on_end: when the scheduler stops, leave running tasks and device workers
            for the next scheduler to adopt (False: stop them).
        end_wait_s: without ``detach_on_end``, how long running tasks get to finish
            when the scheduler stops before they are stopped.
        store_conn: SQLAlchemy URL of the ``fate_*`` tables (default: the Airflow
            metadata database).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: str = Field(
        default="fate",
        description="Planner policy (`airflow-fate policies` lists them).",
        examples=["heft"],
    )
    seed: int = Field(
        default=0,
        description="Seed of randomised policies and of CP-SAT.",
        examples=[7],
    )
    cluster: Path | None = Field(
        default=None,
        description="`cluster.yaml`, the planner's view of the GPUs. Required, except with "
        "the Kubernetes launcher and no `kubernetes_devices`: the cluster is then discovered "
        "from the API (GPU Feature Discovery node labels and the `kubernetes_inventory` "
        "ConfigMap) and `cluster` must be unset.",
        examples=["/etc/fate/cluster.yaml"],
    )
    models: Path = Field(
        description="`models.yaml`, the model catalog (rates, sizes, files).",
        examples=["/etc/fate/models.yaml"],
    )
    inventory: Path | None = Field(
        default=None,
        description="Local launcher: `inventory.yaml` binding cluster GPUs to this machine's "
        "devices (unset: `nvidia-smi`, else virtual CPU devices).",
        examples=["/etc/fate/inventory.yaml"],
    )
    launcher: Literal["local", "kubernetes"] = Field(
        default="local",
        description="`local` (task processes and device workers on this machine) or "
        "`kubernetes` (stage pods pinned to the planned node and GPUs).",
        examples=["kubernetes"],
    )
    kubernetes_mode: Literal["worker-pods", "pod-per-stage"] = Field(
        default="worker-pods",
        description="Kubernetes launcher: `worker-pods` (one long-lived pod per GPU set runs "
        "a device worker and a task agent, so models and prefix KV stay warm from one stage "
        "to the next) or `pod-per-stage` (a fresh pod per task try, as Airflow's "
        "KubernetesExecutor; nothing stays on the GPUs).",
        examples=["pod-per-stage"],
    )
    kubernetes_settings: Path | None = Field(
        default=None,
        description="Kubernetes launcher: `launcher.yaml` (namespace, pod template, GPU mode).",
        examples=["/etc/fate/launcher.yaml"],
    )
    kubernetes_devices: Path | None = Field(
        default=None,
        description="Kubernetes launcher: `devices.yaml` (GPU UUIDs per node); unset: "
        "discover the inventory from the cluster.",
        examples=["/etc/fate/devices.yaml"],
    )
    kubernetes_inventory: str = Field(
        default="airflow-fate-inventory",
        min_length=1,
        description="Kubernetes launcher, discovery: the inventory ConfigMap (keys "
        "`devices.yaml` and `cluster.yaml`) in the stage pods' namespace.",
        examples=["gpu-inventory"],
    )
    planner_time_limit_s: float | None = Field(
        default=None,
        gt=0,
        description="CP-SAT time limit per decision in seconds (FATE policies; unset: the "
        "policy's own).",
        examples=[0.5],
    )
    horizon: int | None = Field(
        default=None,
        ge=0,
        description="Look-ahead depth in DAG hops (FATE policies; unset: the policy's own).",
        examples=[2],
    )
    run_dir: Path | None = Field(
        default=None,
        description="Local launcher: worker sockets, pid files and logs; made owner-only "
        "(0700) (unset: `$AIRFLOW_HOME/fate`).",
        examples=["/var/lib/airflow/fate"],
    )
    cpu_slots: int = Field(
        default=4,
        ge=1,
        description="Tasks without stage metadata that may run at once.",
        examples=[8],
    )
    stage_timeout_s: float = Field(
        default=600.0,
        gt=0,
        description="Seconds a stage may run on its device.",
        examples=[1800.0],
    )
    worker_idle_s: float = Field(
        default=DEFAULT_WORKER_IDLE_S,
        gt=0,
        description="A device worker (local process, or worker pod in Kubernetes "
        "worker-pods mode) with no stage for this many seconds exits.",
        examples=[600.0],
    )
    detach_on_end: bool = Field(
        default=True,
        description="When the scheduler stops, leave running tasks and device workers for "
        "the next scheduler to adopt (False: stop them).",
        examples=[False],
    )
    end_wait_s: float = Field(
        default=30.0,
        ge=0,
        description="Without `detach_on_end`: seconds running tasks get to finish when the "
        "scheduler stops, before they are stopped.",
        examples=[60.0],
    )
    store_conn: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the `fate_*` tables (unset: the Airflow metadata database).",
        examples=["postgresql+psycopg2://airflow@db:5432/fate"],
        json_schema_extra={"sensitive": True},
    )


Getter = Callable[[str, str], str | None]
"""Reads one option (section, key) -> value or None (Airflow's ``conf.get`` with fallback)."""


def load_settings(get: Getter) -> FateSettings:
    """Read ``[fate]`` through ``get``; errors name the option and the reason.

    Raises:
        InputError: ``[fate] <option>: <reason>`` for a missing or invalid option.
    """
    values: dict[str, str] = {}
    for name in FateSettings.model_fields:
        value = get(SECTION, name)
        if value is not None and value.strip() != "":
            values[name] = value.strip()
    try:
        settings = FateSettings.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = format_loc(first["loc"])
        reason = first["msg"]
        if first["type"] == "missing":
            reason = f"required (set [fate] {where} or AIRFLOW__FATE__{where.upper()})"
        raise InputError("[fate]", where, reason) from None
    _check_cluster_source(settings)
    return settings


def discovers_inventory(settings: FateSettings) -> bool:
    """Whether the cluster comes from the Kubernetes API rather than ``cluster.yaml``."""
    return settings.launcher == "kubernetes" and settings.kubernetes_devices is None


def _check_cluster_source(settings: FateSettings) -> None:
    """Exactly one source of the cluster: files, or discovery (never a silent choice)."""
    if discovers_inventory(settings):
        if settings.cluster is not None:
            raise InputError(
                "[fate]",
                "cluster",
                "with launcher = kubernetes, set kubernetes_devices too (inventory from "
                "files), or unset cluster to discover the inventory from the cluster",
            )
    else:
        cluster_file(settings)
