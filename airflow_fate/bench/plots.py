"""PNG figures of a benchmark: normalised metrics, the prefix-reuse sweep, a Gantt chart.

matplotlib is the optional ``bench`` extra and slow to import, so it is imported here
only, inside the functions, with the non-interactive Agg backend (no display needed, the
same pixels on a laptop and in CI).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from airflow_fate.bench.report import FATE, METRICS, best_baseline, is_fate
from airflow_fate.bench.results import BenchResults
from airflow_fate.bench.runner import GanttBar
from airflow_fate.domain.cluster import Cluster

_LABELS = {"normalized_makespan": "makespan", "normalized_p95": "P95 latency"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_normalized(results: BenchResults, path: Path) -> None:
    """Bars of normalised makespan and P95 per policy, with 95% CI whiskers."""
    plt = _pyplot()
    names = [p for p in results.policies if not is_fate(p)]
    names += [p for p in results.policies if is_fate(p)]
    width = 0.4
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(names) + 2), 4.5))
    for i, metric in enumerate(METRICS):
        est = [getattr(results.policies[p], metric) for p in names]
        ax.bar(
            [x + (i - 0.5) * width for x in range(len(names))],
            [e.mean for e in est],
            width,
            yerr=[e.ci95 or 0.0 for e in est],
            capsize=2,
            label=f"normalised {_LABELS[metric]}",
        )
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=45, ha="right")
    for tick, name in zip(ax.get_xticklabels(), names, strict=True):
        if name == FATE:
            tick.set_fontweight("bold")
    ax.set_ylabel("relative to RoundRobin (lower is better)")
    ax.set_title(_spread_title(results))
    ax.legend()
    _save(plt, fig, path)


def plot_sweep(results: BenchResults, path: Path) -> None:
    """Normalised makespan and P95 against the shared-prefix fraction, one line a policy.

    Baselines and ``fate`` only (ablations are in the ablation table). Only ``fate`` (bold)
    and the metric's best baseline carry CI whiskers: thirteen sets of overlapping
    whiskers would hide the lines.
    """
    plt = _pyplot()
    points = results.points or []
    xs = [p.prefix_fraction for p in points]
    names = [p for p in results.policies if not is_fate(p) or p == FATE]
    colours = plt.get_cmap("tab20")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, metric in zip(axes, METRICS, strict=True):
        best = best_baseline(results.policies, metric)
        for k, name in enumerate(names):
            est = [getattr(pt.policies[name], metric) for pt in points]
            whiskers = name in (FATE, best)
            ax.errorbar(
                xs,
                [e.mean for e in est],
                yerr=[e.ci95 or 0.0 for e in est] if whiskers else None,
                label=name,
                color="black" if name == FATE else colours(k % 20),
                linewidth=2.5 if name == FATE else 1.0,
                marker="o",
                markersize=3,
                capsize=3,
                elinewidth=1,
            )
        ax.set_xlabel("shared-prefix fraction F")
        ax.set_ylabel(f"normalised {_LABELS[metric]}")
        ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
        ax.set_ylim(bottom=0)
        ax.set_title(f"whiskers: fate and the best baseline ({best})", fontsize="small")
    axes[1].legend(fontsize="small", loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(_spread_title(results))
    _save(plt, fig, path)


def plot_gantt(
    runs: Mapping[str, Sequence[GanttBar]], cluster: Cluster, path: Path, title: str
) -> None:
    """One panel per policy: a row per GPU, a bar per stage on each of its GPUs.

    Bars are coloured by model (the same colours in every panel), so residency is
    visible: long runs of one colour on a row are a model kept warm.
    """
    plt = _pyplot()
    models = sorted({b.model for bars in runs.values() for b in bars})
    cmap = plt.get_cmap("tab10" if len(models) <= 10 else "tab20")
    colour = {m: cmap(i % cmap.N) for i, m in enumerate(models)}
    labels = [f"{cluster.nodes[g.node].name}:{g.local}" for g in cluster.gpus]
    end = max((b.end_s for bars in runs.values() for b in bars), default=1.0)
    height = max(3.0, 0.12 * len(labels) + 1)
    fig, axes = plt.subplots(
        len(runs),
        1,
        figsize=(14, height * len(runs)),
        sharex=True,
        squeeze=False,
        layout="constrained",
    )
    for ax, (name, bars) in zip(axes[:, 0], runs.items(), strict=True):
        rows: dict[tuple[int, str], list[tuple[float, float]]] = {}
        for b in bars:
            for g in b.gpus:
                rows.setdefault((g, b.model), []).append((b.start_s, b.end_s - b.start_s))
        for (g, model), spans in rows.items():
            ax.broken_barh(
                spans, (g - 0.4, 0.8), facecolors=colour[model], edgecolor="white", linewidth=0.2
            )
        for first in (ids[0] for ids in cluster.node_gpus[1:]):
            ax.axhline(first - 0.5, color="grey", linewidth=0.5)
        _gpu_ticks(ax, labels, cluster)
        ax.set_ylim(len(labels) - 0.5, -0.5)
        ax.set_xlim(0, end * 1.01)
        ax.set_title(name)
    axes[-1, 0].set_xlabel("seconds")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour[m]) for m in models]
    fig.legend(handles, models, loc="outside lower center", ncol=min(5, len(models)))
    fig.suptitle(title)
    _save(plt, fig, path)


def _gpu_ticks(ax: Any, labels: Sequence[str], cluster: Cluster) -> None:
    """Every GPU labelled on small clusters; only each node's first GPU on large ones."""
    small = len(labels) <= 64
    ticks = list(range(len(labels))) if small else [ids[0] for ids in cluster.node_gpus]
    ax.set_yticks(ticks)
    ax.set_yticklabels([labels[t] for t in ticks], fontsize=6)


def _save(plt: Any, fig: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def _spread_title(results: BenchResults) -> str:
    """What the bars show: a mean with a 95% CI needs two seeds; one seed is one run."""
    n = len(results.seeds)
    if n < 2:
        return f"{results.suite}: one seed (a single run, no confidence interval)"
    return f"{results.suite}: {n} seeds, mean ± 95% CI"
