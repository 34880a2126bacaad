"""``airflow-fate bench``: every policy on the same seeded workloads, normalised tables.

Runs each policy on each seed's workload of a suite (and, for ``prefix-reuse``, at each
point of the shared-prefix sweep) in parallel worker processes, divides makespan and P95
latency by RoundRobin's on the same seed, and writes ``results.json``, ``results.md``
and PNG plots to ``--out``. Same options, same ``results.json`` whatever the number of
workers, apart from the wall-clock planner fields, as long as no planner hits its
solver time limit (``planner_fallbacks`` 0).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from airflow_fate.bench.driver import REPORT_SEEDS_FROM, TUNING_SEEDS, BenchConfig, run_bench
from airflow_fate.bench.matrix import Cell, Matrix, cell_standings, write_matrix
from airflow_fate.bench.report import FATE, is_fate
from airflow_fate.bench.results import BenchResults
from airflow_fate.bench.runner import Setting, default_workers
from airflow_fate.cli.common import add_launcher_arg, check_pod_start, float_list
from airflow_fate.cli.progress import progress_bar
from airflow_fate.domain.loaders import load_cluster, load_models
from airflow_fate.errors import InputError
from airflow_fate.planner.registry import policy_names
from airflow_fate.workloads import DEFAULT_LOAD, SUITES
from airflow_fate.workloads.suites import get_suite

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DEFAULT_NOISE = 0.15


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "bench", help="benchmark every policy on a workload suite", description=__doc__
    )
    p.add_argument("--suite", required=True, help=f"workload suite ({', '.join(SUITES)})")
    p.add_argument(
        "--seeds", type=int, default=5, help="how many seeds, from --seeds-from (default 5)"
    )
    p.add_argument(
        "--seeds-from",
        type=int,
        default=0,
        help="the first seed (default 0). Defaults were tuned on seeds "
        f"{TUNING_SEEDS[0]}-{TUNING_SEEDS[-1]}: report on others, e.g. --seeds-from "
        f"{REPORT_SEEDS_FROM}",
    )
    p.add_argument(
        "--workflows", type=int, default=200, help="workflows per workload (default 200)"
    )
    p.add_argument(
        "--policies",
        default="all",
        help="'all' (every registered policy, FATE ablations included) or a comma list; "
        "round-robin is always added, as the normalisation reference",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default out/bench-<suite>[-<launcher>], or "
        "out/matrix-<suite> for several loads or launchers)",
    )
    p.add_argument(
        "--load",
        "--loads",
        dest="loads",
        type=float_list,
        default=(DEFAULT_LOAD,),
        help=f"offered load, or a comma list (one benchmark each, and a win/loss matrix), "
        f"e.g. 0.3,0.5,0.7,0.9,1.1 (default {DEFAULT_LOAD})",
    )
    p.add_argument(
        "--noise",
        type=float,
        default=DEFAULT_NOISE,
        help=f"lognormal sigma of actual/estimated runtimes (default {DEFAULT_NOISE})",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        help=f"worker processes (default min(2, CPUs) = {default_workers()}); results do "
        "not depend on it unless a planner hits its time limit (planner_fallbacks)",
    )
    add_launcher_arg(p, many=True)
    p.add_argument("--cluster", type=Path, default=None, help="cluster.yaml (default: examples/)")
    p.add_argument("--models", type=Path, default=None, help="models.yaml (default: examples/)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    configs = configs_from_args(args)
    several = len(configs) > 1
    with_matrix = several and FATE in configs[0].policies
    if several and not with_matrix:
        # Each cell's results stand on their own; only the matrix needs FATE to compare.
        print(
            f"no win/loss matrix: it stands {FATE} against the other policies, "
            f"and --policies has no {FATE}; each cell's results are still written"
        )
    cells: list[Cell] = []
    for i, config in enumerate(configs, start=1):
        s = config.setting
        label = f"bench {s.suite}" + (
            f" [{i}/{len(configs)}: load {s.load:g}, {s.launcher}]" if len(configs) > 1 else ""
        )
        with progress_bar(label) as update:
            output = run_bench(config, progress=update)
        print_summary(output.results)
        for path in output.files:
            print(f"wrote {path}")
        if with_matrix:
            cells.append(cell_standings(output.runs, s.load, s.launcher, config.seeds))
    if cells:
        matrix = Matrix(suite=configs[0].setting.suite, seeds=list(configs[0].seeds), cells=cells)
        command = command_line(args, matrix.suite, matrix_folder(args, matrix.suite))
        for path in write_matrix(matrix, matrix_folder(args, matrix.suite), command):
            print(f"wrote {path}")
    return 0


def matrix_folder(args: argparse.Namespace, suite: str) -> Path:
    return args.out or Path("out") / f"matrix-{suite}"


def configs_from_args(args: argparse.Namespace) -> list[BenchConfig]:
    """Check the options (each error names its flag); one `BenchConfig` per load and
    launcher. With several, each writes to ``<out>/<launcher>-load-<load>``."""
    suite = get_suite(args.suite).name
    for flag, value in (("--seeds", args.seeds), ("--workflows", args.workflows)):
        if value < 1:
            raise InputError(flag, "", f"must be at least 1, got {value}")
    if args.jobs is not None and args.jobs < 1:
        raise InputError("--jobs", "", f"must be at least 1, got {args.jobs}")
    if args.seeds_from < 0:
        raise InputError("--seeds-from", "", f"must be >= 0, got {args.seeds_from}")
    for load in args.loads:
        if not load > 0:
            raise InputError("--load", "", f"must be a number > 0, got {load:g}")
    if not args.noise >= 0:
        raise InputError("--noise", "", f"must be >= 0, got {args.noise}")
    check_pod_start(args.pod_start_s)
    cluster = args.cluster or EXAMPLES / "cluster.yaml"
    models = args.models or EXAMPLES / "models.yaml"
    load_models(models, load_cluster(cluster))  # fail here, not in every worker
    policies = parse_policies(args.policies)
    cells = [(load, launcher) for launcher in args.launcher for load in args.loads]
    configs = []
    for load, launcher in cells:
        if len(cells) == 1:
            out = args.out or Path("out") / default_folder(suite, launcher)
        else:
            out = matrix_folder(args, suite) / f"{launcher}-load-{load:g}"
        configs.append(
            BenchConfig(
                setting=Setting(
                    suite=suite,
                    workflows=args.workflows,
                    load=load,
                    noise=args.noise,
                    cluster=str(cluster),
                    models=str(models),
                    launcher=launcher,
                    pod_start_s=args.pod_start_s,
                    prestart=not args.lazy_pods,
                ),
                seeds=tuple(range(args.seeds_from, args.seeds_from + args.seeds)),
                policies=policies,
                out=out,
                workers=args.jobs,
                command=command_line(args, suite, out, load=load, launcher=launcher),
            )
        )
    return configs


def default_folder(suite: str, launcher: str) -> str:
    """``bench-<suite>``, with ``-<launcher>`` unless the launcher is local."""
    return f"bench-{suite}" if launcher == "local" else f"bench-{suite}-{launcher}"


def parse_policies(text: str) -> tuple[str, ...]:
    """``all`` or a comma list of registered names, without repeats, in the given order."""
    known = policy_names()
    if text.strip() == "all":
        return tuple(known)
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise InputError("--policies", "", "no policy given")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError(
            "--policies", "", f"unknown policy {unknown[0]!r} (known: {', '.join(known)})"
        )
    return names


def command_line(
    args: argparse.Namespace,
    suite: str,
    out: Path,
    *,
    load: float | None = None,
    launcher: str | None = None,
) -> str:
    """The command that reproduces this run (files and defaults spelled as given): one
    cell's when ``load`` and ``launcher`` are given, else the whole matrix's."""
    parts = [
        f"airflow-fate bench --suite {suite} --seeds {args.seeds} --workflows {args.workflows}",
        f"--policies {args.policies}",
    ]
    if args.seeds_from:
        parts.append(f"--seeds-from {args.seeds_from}")
    loads = (load,) if load is not None else args.loads
    if loads != (DEFAULT_LOAD,):
        parts.append(f"--load {','.join(f'{x:g}' for x in loads)}")
    if args.noise != DEFAULT_NOISE:
        parts.append(f"--noise {args.noise:g}")
    launchers = (launcher,) if launcher is not None else args.launcher
    if launchers != ("local",):
        parts.append(f"--launcher {','.join(launchers)}")
    if args.pod_start_s is not None:
        parts.append(f"--pod-start-s {args.pod_start_s:g}")
    if args.lazy_pods:
        parts.append("--lazy-pods")
    for flag, path in (("--cluster", args.cluster), ("--models", args.models)):
        if path is not None:
            parts.append(f"{flag} {path}")
    parts.append(f"--out {out}")
    return " ".join(parts)


def print_summary(results: BenchResults) -> None:
    table = Table(
        title=f"{results.suite}, {results.launcher} launcher: normalised by round-robin "
        f"({len(results.seeds)} seeds)"
    )
    for col in ("policy", "makespan", "P95", "makespan/LB", "planner p99 ms"):
        table.add_column(col, justify="left" if col == "policy" else "right")
    names = [p for p in results.policies if not is_fate(p)]
    names += [p for p in results.policies if is_fate(p)]
    for name in names:
        s = results.policies[name]
        table.add_row(
            f"[bold]{name}[/bold]" if name == FATE else name,
            f"{s.normalized_makespan.mean:.3f}",
            f"{s.normalized_p95.mean:.3f}",
            f"{s.makespan_over_lower_bound.mean:.2f}",
            f"{s.planner_p99_ms:.1f}",
        )
    Console().print(table)
