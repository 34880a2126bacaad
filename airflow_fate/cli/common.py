"""Options and checks shared by the commands that take a cluster, catalog and workload."""

from __future__ import annotations

import argparse
from pathlib import Path

from airflow_fate.errors import InputError
from airflow_fate.planner.registry import policy_names
from airflow_fate.state.hosting import HOSTING_MODES


def add_launcher_arg(p: argparse.ArgumentParser) -> None:
    """``--launcher`` (and its old spelling ``--pod-per-stage``): what GPUs keep."""
    p.add_argument(
        "--launcher",
        choices=HOSTING_MODES,
        default="local",
        help="how stages are hosted: 'local' long-lived device workers (default); "
        "'worker-pods' long-lived Kubernetes pods per GPU set (cluster.yaml pod_start_s "
        "to start one, lost when replaced or idle); 'pod-per-stage' a fresh pod per "
        "stage that keeps nothing (Airflow's KubernetesExecutor)",
    )
    p.add_argument(
        "--pod-start-s",
        type=float,
        default=None,
        help="seconds to start a pod, overriding cluster.yaml's pod_start_s (default: "
        "the cluster's figure)",
    )
    p.add_argument(
        "--pod-per-stage",
        dest="launcher",
        action="store_const",
        const="pod-per-stage",
        help="the same as --launcher pod-per-stage",
    )


def add_input_args(p: argparse.ArgumentParser) -> None:
    """``--cluster``, ``--models``, ``--workload`` and ``--policy``."""
    p.add_argument("--cluster", required=True, type=Path, help="cluster.yaml")
    p.add_argument("--models", required=True, type=Path, help="models.yaml")
    p.add_argument("--workload", required=True, type=Path, help="workload.json")
    p.add_argument(
        "--policy", default="greedy-eft", help="policy name (see `airflow-fate policies`)"
    )


def check_pod_start(value: float | None) -> None:
    """Raise an `InputError` naming ``--pod-start-s`` unless it is unset or >= 0."""
    if value is not None and not value >= 0:
        raise InputError("--pod-start-s", "", f"must be >= 0, got {value}")


def check_policy(name: str) -> None:
    """Raise an `InputError` naming ``--policy`` unless ``name`` is registered."""
    if name not in policy_names():
        known = ", ".join(policy_names())
        raise InputError("--policy", "", f"unknown policy {name!r} (known: {known})")
