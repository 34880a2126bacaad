"""The benchmark as one call: jobs for every policy, seed and point; run; write outputs.

``real-dag`` runs every policy on the workload of each seed. ``prefix-reuse`` does the
same at every point of the shared-prefix sweep (fraction F in `PREFIX_FRACTION_SWEEP`,
`SWEEP_PREFIXES` distinct prefixes), so a point's policies share one workload per seed.
RoundRobin always runs: it is the yardstick every metric is divided by.

Outputs in the ``out`` folder: ``results.json`` (`airflow_fate.bench.results`),
``results.md`` (`airflow_fate.bench.report`), ``normalized.png``, ``prefix_sweep.png``
(sweeps only) and ``gantt.png``: the first seed's workload (at F = 0.5 for the sweep)
under ``fate`` and under the strongest baseline, the non-FATE policy with the lowest
normalised makespan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from airflow_fate.bench import plots
from airflow_fate.bench.matrix import cell_standings, standing_lines
from airflow_fate.bench.report import FATE, best_baseline, is_fate, write_json, write_markdown
from airflow_fate.bench.results import REFERENCE, BenchResults, summarise_runs
from airflow_fate.bench.runner import GanttBar, JobResult, Point, Setting, run_jobs
from airflow_fate.bench.runner import Job as BenchJob
from airflow_fate.domain.loaders import load_cluster
from airflow_fate.workloads.suites import (
    DEFAULT_PREFIX_FRACTION,
    DEFAULT_PREFIXES,
    PREFIX_FRACTION_SWEEP,
    PREFIX_REUSE,
)

TUNING_SEEDS = range(5)
"""The seeds every default of the planners was chosen on (`FateConfig`)."""

REPORT_SEEDS_FROM = 100
"""Published figures use seeds from here on: workloads no setting was chosen on."""

SWEEP_PREFIXES = DEFAULT_PREFIXES
"""Distinct shared prefixes at every point of the prefix-reuse sweep."""

GANTT_FRACTION = DEFAULT_PREFIX_FRACTION
"""The sweep point whose first-seed workload the Gantt chart shows."""


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark: the ``bench`` options, checked.

    Attributes:
        setting: what every job shares (suite, size, load, noise, input files).
        seeds: the seeds, each a replication with its own workload.
        policies: registered policy names; RoundRobin is added when missing.
        out: the output folder.
        workers: worker processes (None: `runner.default_workers`).
        command: the command line that regenerates this run, quoted in ``results.md``.
    """

    setting: Setting
    seeds: tuple[int, ...]
    policies: tuple[str, ...]
    out: Path
    workers: int | None = None
    command: str | None = None


@dataclass(frozen=True)
class BenchOutput:
    """What a benchmark produced: the summary, the raw job results and files written."""

    results: BenchResults
    runs: list[JobResult]
    files: list[Path] = field(default_factory=list)


def sweep_points(suite: str) -> list[Point | None]:
    """The points a suite is run at (``[None]``: no sweep)."""
    if suite != PREFIX_REUSE:
        return [None]
    return [Point(f, SWEEP_PREFIXES) for f in PREFIX_FRACTION_SWEEP]


def with_reference(policies: tuple[str, ...]) -> tuple[str, ...]:
    """``policies`` with RoundRobin first if it was not asked for."""
    return policies if REFERENCE in policies else (REFERENCE, *policies)


def build_jobs(config: BenchConfig) -> list[BenchJob]:
    """Every policy on every seed and point, seed by seed (so worker caches hit)."""
    points = sweep_points(config.setting.suite)
    gantt_point = _gantt_point(points)
    first = config.seeds[0]
    return [
        BenchJob(
            policy=policy,
            seed=seed,
            point=point,
            keep_bars=seed == first and point == gantt_point and _may_be_drawn(policy),
        )
        for seed in config.seeds
        for point in points
        for policy in with_reference(config.policies)
    ]


def run_bench(
    config: BenchConfig, progress: Callable[[int, int], None] | None = None
) -> BenchOutput:
    """Run the benchmark and write ``results.json``, ``results.md`` and the plots."""
    s = config.setting
    runs = run_jobs(s, build_jobs(config), config.workers, progress)
    results = summarise_runs(
        runs,
        suite=s.suite,
        seeds=config.seeds,
        workflows=s.workflows,
        load=s.load,
        noise=s.noise,
        launcher=s.launcher,
    )
    out = config.out
    files = [out / "results.json", out / "results.md", out / "normalized.png"]
    write_json(results, files[0])
    write_markdown(results, files[1], config.command, _standing(runs, config))
    plots.plot_normalized(results, files[2])
    if results.points:
        files.append(out / "prefix_sweep.png")
        plots.plot_sweep(results, files[-1])
    gantt = _gantt_runs(results, runs)
    if gantt:
        files.append(out / "gantt.png")
        title = f"{s.suite}, seed {config.seeds[0]}, {s.workflows} workflows, {s.launcher}"
        if results.points:
            title += f", F = {GANTT_FRACTION:g}"
        plots.plot_gantt(gantt, load_cluster(s.cluster), files[-1], title)
    return BenchOutput(results=results, runs=runs, files=files)


def _standing(runs: list[JobResult], config: BenchConfig) -> list[str]:
    """FATE against the best other policy, when both ran."""
    policies = {r.job.policy for r in runs}
    if FATE not in policies or not any(not is_fate(p) for p in policies):
        return []
    s = config.setting
    return standing_lines(cell_standings(runs, s.load, s.launcher, config.seeds))


def _gantt_point(points: list[Point | None]) -> Point | None:
    return next(
        (p for p in points if p is not None and p.prefix_fraction == GANTT_FRACTION), points[0]
    )


def _may_be_drawn(policy: str) -> bool:
    """The Gantt shows ``fate`` and a baseline; ablations never."""
    return policy == FATE or not is_fate(policy)


def _gantt_runs(results: BenchResults, runs: list[JobResult]) -> dict[str, list[GanttBar]]:
    """``fate`` and the strongest baseline's placements, if both ran."""
    baseline = best_baseline(results.policies, "normalized_makespan")
    if FATE not in results.policies or baseline is None:
        return {}
    bars = {r.job.policy: list(r.bars) for r in runs if r.job.keep_bars}
    return {FATE: bars[FATE], f"{baseline} (strongest baseline)": bars[baseline]}
