"""``airflow-fate policies``: the registered policies, each with a one-line description.

FATE's ablations (one mechanism switched off or replaced) are marked as such, so the
benchmark's ablation table can be read against this list.
"""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

from airflow_fate.planner.registry import describe, policy_names

KIND_LABEL = {"fate": "FATE", "ablation": "ablation", "baseline": "baseline"}


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "policies", help="list scheduling policies with a description each", description=__doc__
    )
    p.add_argument("--names", action="store_true", help="print the bare names only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    names = policy_names()
    if args.names:
        print("\n".join(names))
        return 0
    width = max(len(n) for n in names)
    indent = " " * (width + 12)
    for name in names:
        info = describe(name)
        kind = KIND_LABEL[info.kind]
        summary = f"of fate: {info.summary}" if info.kind == "ablation" else info.summary
        lines = textwrap.wrap(summary, width=80 - len(indent)) or [""]
        print(f"{name:<{width}}  {kind:<8}  {lines[0]}")
        for more in lines[1:]:
            print(f"{indent}{more}")
    return 0
