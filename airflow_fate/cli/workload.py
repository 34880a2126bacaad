"""``airflow-fate workload generate``: write a benchmark workload of a suite.

The arrival rate follows from ``--load`` and the cluster and catalog files (see
`airflow_fate.workloads.load`); the written file is loaded back before it replaces
``--out``. Same options, same files: the same bytes.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from airflow_fate.domain.loaders import load_cluster, load_models
from airflow_fate.workloads import (
    DEFAULT_LOAD,
    PREFIX_COUNT_SWEEP,
    PREFIX_FRACTION_SWEEP,
    SUITES,
    GeneratedWorkload,
    GenerateRequest,
    SuiteOptions,
    generate,
    write_workload,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "workload", help="generate benchmark workloads", description="Benchmark workloads."
    )
    actions = p.add_subparsers(dest="workload_command", required=True, metavar="ACTION")
    suites = "; ".join(f"{s.name}: {s.summary}" for s in SUITES.values())
    g: argparse.ArgumentParser = actions.add_parser(
        "generate", help="write a workload.json of a suite", description=__doc__
    )
    g.add_argument("--suite", required=True, help=f"workload suite ({suites})")
    g.add_argument("--workflows", required=True, type=int, help="number of workflows")
    g.add_argument("--seed", required=True, type=int, help="seed of every draw (>= 0)")
    g.add_argument(
        "--load",
        type=float,
        default=DEFAULT_LOAD,
        help="offered load rho: arrival rate = rho * cluster capacity / mean workflow work "
        f"(default {DEFAULT_LOAD})",
    )
    g.add_argument(
        "--prefix-fraction",
        type=float,
        default=None,
        help="prefix-reuse only: share of each stage's input that is a shared prefix, in "
        f"[0, 1) (default 0.5; the benchmark sweeps {', '.join(map(str, PREFIX_FRACTION_SWEEP))})",
    )
    g.add_argument(
        "--prefixes",
        type=int,
        default=None,
        help="prefix-reuse only: number of distinct shared prefixes (default 4; the benchmark "
        f"sweeps {', '.join(map(str, PREFIX_COUNT_SWEEP))})",
    )
    g.add_argument(
        "--cluster",
        type=Path,
        default=EXAMPLES / "cluster.yaml",
        help="cluster.yaml the load refers to (default: the repository's examples/cluster.yaml)",
    )
    g.add_argument(
        "--models",
        type=Path,
        default=EXAMPLES / "models.yaml",
        help="models.yaml catalog (default: the repository's examples/models.yaml)",
    )
    g.add_argument("--out", required=True, type=Path, help="workload.json to write")
    g.set_defaults(func=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    request = GenerateRequest(
        suite=args.suite,
        workflows=args.workflows,
        seed=args.seed,
        load=args.load,
        options=SuiteOptions(prefix_fraction=args.prefix_fraction, prefixes=args.prefixes),
    )
    cluster = load_cluster(args.cluster)
    catalog = load_models(args.models, cluster)
    generated = generate(request, cluster, catalog)
    write_workload(generated.workload, args.out, catalog, cluster)
    print(summary_line(args.out, request.suite, generated))
    return 0


def summary_line(out: Path, suite: str, generated: GeneratedWorkload) -> str:
    """One line: what was written, from which suite, and its arrival window."""
    o = generated.offered
    return (
        f"wrote {out}: {suite}, {len(generated.workload.workflows)} workflows, "
        f"{generated.stage_count} stages, {len(generated.models)} models "
        f"({', '.join(generated.models)}); arrivals over {generated.window_s:.1f} s "
        f"({o.rate:.3f}/s at load {o.load:g})"
    )
