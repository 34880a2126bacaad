"""``airflow-fate policies``: list the registered policy names."""

from __future__ import annotations

import argparse
from typing import Any

from airflow_fate.planner.registry import policy_names


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("policies", help="list scheduling policies")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for name in policy_names():
        print(name)
    return 0
