"""``airflow-fate simulate``: run one policy on a workload in the simulator."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from airflow_fate.cli.common import (
    add_input_args,
    add_launcher_arg,
    check_pod_start,
    check_policy,
)
from airflow_fate.cli.progress import progress_bar
from airflow_fate.cost.correction import CorrectionStore
from airflow_fate.domain.loaders import load_inputs
from airflow_fate.errors import InputError
from airflow_fate.planner.registry import make_policy
from airflow_fate.sim.simulator import simulate
from airflow_fate.spine.metrics import RunResult
from airflow_fate.state.hosting import Hosting


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "simulate", help="simulate a policy on a workload", description=__doc__
    )
    add_input_args(p)
    p.add_argument("--seed", type=int, default=0, help="seed of runtime noise and random policies")
    p.add_argument(
        "--noise", type=float, default=0.15, help="lognormal sigma of actual/estimate (0 = exact)"
    )
    p.add_argument("--json", type=Path, default=None, help="write the full result here")
    p.add_argument(
        "--correction",
        type=Path,
        default=None,
        help="cost-correction state file learned by `airflow-fate run` (default: none)",
    )
    add_launcher_arg(p)
    p.add_argument(
        "--no-timings",
        action="store_true",
        help="leave wall-clock planner timings out of the JSON (byte-identical reruns)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.noise < 0:
        raise InputError("--noise", "", f"must be >= 0, got {args.noise}")
    check_policy(args.policy)
    check_pod_start(args.pod_start_s)
    inputs = load_inputs(args.cluster, args.models, args.workload)
    policy = make_policy(args.policy, args.seed)
    cost = None
    if args.correction is not None:
        cost = CorrectionStore.load(args.correction).cost_model(inputs.cluster, inputs.catalog)
    started = time.perf_counter()
    with progress_bar(f"simulating {args.policy}") as update:
        result = simulate(
            inputs.cluster,
            inputs.catalog,
            inputs.workload,
            policy,
            seed=args.seed,
            noise=args.noise,
            progress=update,
            cost=cost,
            hosting=Hosting.of(
                args.launcher,
                inputs.cluster,
                pod_start_s=args.pod_start_s,
                prestart=not args.lazy_pods,
            ),
        )
    wall_s = time.perf_counter() - started
    if args.no_timings:
        result = result.without_timings()
    print_summary(result)
    if not args.no_timings:
        stages = len(result.placements)
        print(f"simulated {stages} stages in {wall_s:.2f} s ({stages / wall_s:,.0f} stages/s)")
    if args.json is not None:
        write_json(result, args.json)
        print(f"wrote {args.json}")
    return 0


def write_json(result: RunResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(result.model_dump_json(indent=2, exclude_none=True) + "\n", encoding="utf-8")


def print_summary(result: RunResult) -> None:
    title = f"{result.policy} (seed {result.seed}, launcher {result.launcher})"
    table = Table(title=title, show_header=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("workflows", str(len(result.workflows))),
        ("stages", str(len(result.placements))),
        ("makespan s", f"{result.makespan_s:.2f}"),
        ("lower bound s", f"{result.lower_bound_s:.2f}"),
        ("mean latency s", f"{result.mean_latency_s:.2f}"),
        ("p95 latency s", f"{result.p95_latency_s:.2f}"),
        ("model loads", f"{result.counters.model_loads} ({result.counters.load_s:.1f} s)"),
        ("prefix hits", str(result.counters.prefix_hits)),
        ("GB moved", f"{result.counters.bytes_moved_gb:.3f}"),
        ("evictions", str(result.counters.evictions)),
        ("pod starts", str(result.counters.pod_starts)),
        ("decisions", str(result.planner.decisions)),
    ]
    if result.planner.p99_ms is not None:
        rows.append(
            ("planner p50/p99 ms", f"{result.planner.p50_ms:.2f} / {result.planner.p99_ms:.2f}")
        )
    for k, v in rows:
        table.add_row(k, v)
    Console().print(table)
