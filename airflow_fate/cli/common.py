"""Options and checks shared by the commands that take a cluster, catalog and workload."""

from __future__ import annotations

import argparse
from pathlib import Path

from airflow_fate.errors import InputError
from airflow_fate.planner.registry import policy_names


def add_input_args(p: argparse.ArgumentParser) -> None:
    """``--cluster``, ``--models``, ``--workload`` and ``--policy``."""
    p.add_argument("--cluster", required=True, type=Path, help="cluster.yaml")
    p.add_argument("--models", required=True, type=Path, help="models.yaml")
    p.add_argument("--workload", required=True, type=Path, help="workload.json")
    p.add_argument(
        "--policy", default="greedy-eft", help="policy name (see `airflow-fate policies`)"
    )


def check_policy(name: str) -> None:
    """Raise an `InputError` naming ``--policy`` unless ``name`` is registered."""
    if name not in policy_names():
        known = ", ".join(policy_names())
        raise InputError("--policy", "", f"unknown policy {name!r} (known: {known})")
