"""``airflow-fate bench-planner``: how long one planning decision takes, by size.

Times ``plan`` on a realistic mid-run snapshot with N ready stages on M GPUs (see
`airflow_fate.bench.planner_scale`) and prints p50 / p99 / max milliseconds per policy,
for fresh policies (``cold``: first sight of every workflow) and primed ones (``warm``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter
from rich.console import Console
from rich.table import Table

from airflow_fate.bench.planner_scale import (
    DEFAULT_SIZES,
    MODES,
    Timing,
    default_inputs,
    run_scale,
)
from airflow_fate.errors import InputError
from airflow_fate.planner.registry import policy_names

DEFAULT_POLICIES = "fate,greedy-eft"


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "bench-planner", help="time single planner decisions by size", description=__doc__
    )
    sizes = ",".join(f"{r}x{g}" for r, g in DEFAULT_SIZES)
    p.add_argument(
        "--sizes",
        default=sizes,
        help=f"comma list of READYxGPUS (default {sizes}); 40 GPUs is examples/cluster.yaml, "
        "other counts (multiples of 8) scale its node mix",
    )
    p.add_argument(
        "--policies", default=DEFAULT_POLICIES, help=f"comma list (default {DEFAULT_POLICIES})"
    )
    p.add_argument("--repeats", type=int, default=10, help="timed calls per mode (default 10)")
    p.add_argument(
        "--mode",
        choices=[*MODES, "both"],
        default="both",
        help="cold: fresh policy per call; warm: primed policy (default both)",
    )
    p.add_argument("--json", type=Path, default=None, help="also write the timings here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    sizes = parse_sizes(args.sizes)
    policies = parse_policy_list(args.policies)
    if args.repeats < 1:
        raise InputError("--repeats", "", f"must be at least 1, got {args.repeats}")
    modes = MODES if args.mode == "both" else (args.mode,)
    cluster, catalog = default_inputs()
    timings = run_scale(sizes, policies, args.repeats, cluster, catalog, modes)
    print_table(timings)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        text = TypeAdapter(list[Timing]).dump_json(timings, indent=2).decode()
        args.json.write_text(text + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``16x40,64x40`` -> ``[(16, 40), (64, 40)]``; `InputError` on ``--sizes``."""
    out: list[tuple[int, int]] = []
    for item in (s.strip() for s in text.split(",")):
        ready, _, gpus = item.lower().partition("x")
        if not (ready.isdigit() and gpus.isdigit() and int(ready) > 0 and int(gpus) > 0):
            raise InputError(
                "--sizes", "", f"expected READYxGPUS with positive counts, got {item!r}"
            )
        out.append((int(ready), int(gpus)))
    return out


def parse_policy_list(text: str) -> list[str]:
    known = policy_names()
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in known]
    if not names or unknown:
        what = f"unknown policy {unknown[0]!r}" if unknown else "no policy given"
        raise InputError("--policies", "", f"{what} (known: {', '.join(known)})")
    return names


def print_table(timings: list[Timing]) -> None:
    table = Table(title="planner decision time (ms)")
    for col in ("ready x GPUs", "policy", "mode", "p50", "p99", "max"):
        table.add_column(col, justify="right" if col in ("p50", "p99", "max") else "left")
    for t in timings:
        table.add_row(
            f"{t.ready} x {t.gpus}",
            t.policy,
            t.mode,
            f"{t.p50_ms:.1f}",
            f"{t.p99_ms:.1f}",
            f"{t.max_ms:.1f}",
        )
    Console().print(table)
