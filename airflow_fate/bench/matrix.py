"""The win/loss matrix: FATE against the best other policy in every (load, launcher) cell.

A cell is one benchmark (every policy on the same seeded workloads). Per metric
(makespan, P95 and mean workflow latency) the cell's "best other" is the non-FATE policy
with the lowest mean; FATE's standing is the paired ratio ``fate / best`` on each seed,
summarised over seeds as a mean with a 95% t interval. Verdicts:

- ``win``: the whole interval is below 1 (FATE is lower on every plausible reading);
- ``loss``: the whole interval is above 1;
- ``tie``: the interval contains 1 (the seeds do not separate the two);
- ``too few seeds``: fewer than `MIN_SEEDS` seeds; no interval is worth reading.

The pairing matters: seeds differ far more from each other than policies do on one
seed, so the ratio's interval is much tighter than one drawn from two unpaired means.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from airflow_fate.bench.report import FATE, is_fate
from airflow_fate.bench.runner import JobResult
from airflow_fate.bench.stats import mean_ci
from airflow_fate.state.hosting import HostingMode

MIN_SEEDS = 3
"""Below this many seeds a cell reports its ratios but draws no verdict."""

MatrixMetric = Literal["makespan_s", "p95_latency_s", "mean_latency_s"]
MATRIX_METRICS: tuple[tuple[MatrixMetric, str], ...] = (
    ("makespan_s", "makespan"),
    ("p95_latency_s", "P95"),
    ("mean_latency_s", "mean latency"),
)
Verdict = Literal["win", "loss", "tie", "too few seeds"]


class Standing(BaseModel):
    """FATE against the best other policy on one metric of one cell."""

    best_other: str
    ratio: float
    """Mean over seeds of ``fate / best_other`` (below 1: FATE is better)."""
    ci95: float | None
    verdict: Verdict


class Cell(BaseModel):
    """One (load, launcher) benchmark's standings, by metric name."""

    load: float
    launcher: HostingMode
    seeds: int
    standings: dict[str, Standing]


class Matrix(BaseModel):
    """The ``matrix.json`` document."""

    suite: str
    seeds: list[int]
    cells: list[Cell]


def cell_standings(
    runs: Sequence[JobResult], load: float, launcher: HostingMode, seeds: Sequence[int]
) -> Cell:
    """FATE's standing per metric in one benchmark's runs (every point averaged per seed).

    Raises:
        ValueError: ``fate`` or every other policy is missing from ``runs``.
    """
    standings = {m: _standing(runs, m, len(seeds)) for m, _ in MATRIX_METRICS}
    return Cell(load=load, launcher=launcher, seeds=len(seeds), standings=standings)


def _standing(runs: Sequence[JobResult], metric: MatrixMetric, n_seeds: int) -> Standing:
    per_seed = _per_seed(runs, metric)
    others = [p for p in per_seed if not is_fate(p)]
    if FATE not in per_seed or not others:
        raise ValueError("the matrix needs fate and at least one other policy")
    best = min(others, key=lambda p: (math.fsum(per_seed[p].values()) / len(per_seed[p]), p))
    fate = per_seed[FATE]
    ratios = [fate[s] / per_seed[best][s] for s in sorted(fate)]
    est = mean_ci(ratios)
    return Standing(
        best_other=best,
        ratio=round(est.mean, 6),
        ci95=None if est.ci95 is None else round(est.ci95, 6),
        verdict=verdict(est.mean, est.ci95, n_seeds),
    )


def _per_seed(runs: Sequence[JobResult], metric: MatrixMetric) -> dict[str, dict[int, float]]:
    """Per policy and seed, the metric averaged over the seed's sweep points."""
    sums: dict[str, dict[int, list[float]]] = {}
    for r in runs:
        sums.setdefault(r.job.policy, {}).setdefault(r.job.seed, []).append(getattr(r, metric))
    return {
        p: {s: math.fsum(v) / len(v) for s, v in by_seed.items()} for p, by_seed in sums.items()
    }


def verdict(ratio: float, ci95: float | None, n_seeds: int) -> Verdict:
    """See the module docstring."""
    if n_seeds < MIN_SEEDS or ci95 is None:
        return "too few seeds"
    if ratio + ci95 < 1.0:
        return "win"
    if ratio - ci95 > 1.0:
        return "loss"
    return "tie"


def standing_lines(cell: Cell) -> list[str]:
    """A cell's standings as a short table, for one benchmark's ``results.md``."""
    out = [
        f"FATE's metric over the best other policy's on the same seed, mean ± 95% CI over "
        f"{cell.seeds} seeds (below 1: FATE is better).",
        "",
        "| Metric | Best other | FATE / best other | Verdict |",
        "|---|---|---:|---|",
    ]
    for m, label in MATRIX_METRICS:
        s = cell.standings[m]
        interval = "" if s.ci95 is None else f" ± {s.ci95:.3f}"
        out.append(f"| {label} | {s.best_other} | {s.ratio:.3f}{interval} | {s.verdict} |")
    if cell.seeds < MIN_SEEDS:
        out += [
            "",
            f"Too small to conclude anything: {cell.seeds} seed(s); a verdict needs at least "
            f"{MIN_SEEDS}, and the README's figures use 5 report seeds.",
        ]
    return out


def render_matrix(matrix: Matrix, command: str | None = None) -> str:
    """``matrix.md``: one row per cell, one column per metric."""
    seeds = matrix.seeds
    lines = [
        f"# Win/loss matrix: `{matrix.suite}`",
        "",
        f"{len(seeds)} seeds ({', '.join(map(str, seeds))}). Each entry is FATE's metric over "
        "the best other policy's on the same seed (mean ± 95% CI over seeds; below 1 FATE "
        "is better), that policy, and the verdict: win or loss when the whole interval is "
        f"on one side of 1, tie otherwise; no verdict with fewer than {MIN_SEEDS} seeds.",
    ]
    if command:
        lines += ["", "Regenerate with:", "", "```", command, "```"]
    header = "| Load | Launcher | " + " | ".join(label for _, label in MATRIX_METRICS) + " |"
    lines += ["", header, "|---:|---|" + "---|" * len(MATRIX_METRICS)]
    for cell in matrix.cells:
        entries = [_entry(cell.standings[m]) for m, _ in MATRIX_METRICS]
        lines.append(f"| {cell.load:g} | {cell.launcher} | " + " | ".join(entries) + " |")
    counts = _tally(matrix)
    lines += [
        "",
        f"Tally over {len(matrix.cells)} cells x {len(MATRIX_METRICS)} metrics: {counts}.",
    ]
    return "\n".join(lines) + "\n"


def _entry(s: Standing) -> str:
    interval = "" if s.ci95 is None else f" ± {s.ci95:.3f}"
    return f"{s.ratio:.3f}{interval} vs {s.best_other}: **{s.verdict}**"


def _tally(matrix: Matrix) -> str:
    counts: dict[str, int] = {}
    for cell in matrix.cells:
        for s in cell.standings.values():
            counts[s.verdict] = counts.get(s.verdict, 0) + 1
    return ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))


def write_matrix(matrix: Matrix, out: Path, command: str | None = None) -> list[Path]:
    """Write ``matrix.json`` and ``matrix.md`` into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "matrix.json", out / "matrix.md"
    json_path.write_text(matrix.model_dump_json(indent=2) + "\n", encoding="utf-8")
    md_path.write_text(render_matrix(matrix, command), encoding="utf-8")
    return [json_path, md_path]
