"""Write ``results.json`` and the paper-style tables of ``results.md``.

Tables (all metrics normalised by RoundRobin per seed; ``mean ± 95% CI`` over seeds):

- main: every baseline and ``fate``, with the gain vs RoundRobin (``1 - normalised``)
  and the gain vs the best baseline, ``1 - normalised / best``, where the best baseline
  is the non-FATE policy with the lowest mean on that metric (RoundRobin included: it
  is a baseline too), chosen per metric;
- ablations: ``fate`` and its ``fate-*`` variants, each with its change relative to
  ``fate`` (positive = slower than ``fate``);
- for a sweep, normalised makespan and P95 per point, and ``fate``'s gain vs the best
  baseline at each point (chosen per point).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from airflow_fate.bench.results import BenchResults, MeanCI, PolicySummary
from airflow_fate.planner.registry import FATE_POLICIES

FATE = "fate"
Metric = Literal["normalized_makespan", "normalized_p95"]
METRICS: tuple[Metric, ...] = ("normalized_makespan", "normalized_p95")


def write_json(results: BenchResults, path: Path) -> None:
    """Write ``results`` as indented JSON (``null`` intervals kept; no sweep: no points)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    exclude = {"points"} if results.points is None else None
    text = results.model_dump_json(indent=2, exclude=exclude)
    path.write_text(text + "\n", encoding="utf-8")


def write_markdown(
    results: BenchResults, path: Path, command: str | None = None, standing: Sequence[str] = ()
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_markdown(results, command, standing), encoding="utf-8")


def is_fate(policy: str) -> bool:
    """FATE or one of its ablations (everything else is a baseline)."""
    return policy in FATE_POLICIES


def best_baseline(policies: Mapping[str, PolicySummary], metric: Metric) -> str | None:
    """The non-FATE policy with the lowest mean ``metric`` (first on ties), if any ran."""
    baselines = [p for p in policies if not is_fate(p)]
    if not baselines:
        return None
    return min(baselines, key=lambda p: getattr(policies[p], metric).mean)


def gain(value: float, reference: float) -> float:
    """Fractional improvement of ``value`` over ``reference`` (lower is better)."""
    return 1.0 - value / reference


def render_markdown(
    results: BenchResults, command: str | None = None, standing: Sequence[str] = ()
) -> str:
    """The whole ``results.md``: header, main table, ``standing`` (FATE against the best
    other policy, if given), counters, ablations and any sweep tables."""
    seeds = results.seeds
    lines = [
        f"# Benchmark: `{results.suite}`",
        "",
        f"{results.workflows} workflows per workload, {len(seeds)} seeds "
        f"({', '.join(map(str, seeds))}), offered load {results.load:g}, launcher "
        f"`{results.launcher}`, runtime noise "
        f"sigma {results.noise:g}. Makespan and P95 workflow latency are divided by "
        f"RoundRobin's on the same seed, then averaged: mean ± 95% CI (Student t over seeds"
        f"{'; no interval with one seed' if len(seeds) == 1 else ''}).",
    ]
    if results.points:
        lines += [
            "",
            "Sweep suite: the tables below aggregate all points (each seed's points are "
            "averaged first); per-point tables follow.",
        ]
    if command:
        lines += ["", "Regenerate with:", "", "```", command, "```"]
    lines += ["", "## Main results", "", *main_table(results.policies)]
    lines += fallback_note(results.policies)
    if standing:
        lines += ["", "## FATE against the best other policy", "", *standing]
    lines += ["", "## Seconds and counters", "", *counters_table(results.policies)]
    lines += ["", "## Ablations", "", *ablation_table(results.policies)]
    if results.points:
        lines += ["", "## Prefix-reuse sweep", "", *sweep_tables(results)]
    return "\n".join(lines) + "\n"


def main_table(policies: Mapping[str, PolicySummary]) -> list[str]:
    """Baselines then ``fate``: normalised metrics, gains, makespan/LB, planner p99."""
    rows = [p for p in policies if not is_fate(p)] + ([FATE] if FATE in policies else [])
    best = {m: best_baseline(policies, m) for m in METRICS}
    out = [
        "| Policy | Norm. makespan | Norm. P95 | Gain vs RoundRobin (makespan / P95) "
        "| Gain vs best baseline (makespan / P95) | Makespan / LB | Planner p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for p in rows:
        s = policies[p]
        vs_rr = " / ".join(_pct(gain(getattr(s, m).mean, 1.0)) for m in METRICS)
        vs_best = " / ".join(_gain_vs(policies, s, best[m], m) for m in METRICS)
        name = f"**{p}**" if p == FATE else p
        out.append(
            f"| {name} | {_fmt(s.normalized_makespan)} | {_fmt(s.normalized_p95)} "
            f"| {vs_rr} | {vs_best} | {_fmt(s.makespan_over_lower_bound, 2)} "
            f"| {s.planner_p99_ms:.1f} |"
        )
    named = [f"{label}: {best[m]}" for m, label in zip(METRICS, ("makespan", "P95"), strict=True)]
    out += ["", f"Best baseline per metric: {'; '.join(named)}."]
    return out


def counters_table(policies: Mapping[str, PolicySummary]) -> list[str]:
    """Raw makespan and P95 seconds, and per-run model loads, evictions and pod starts."""
    out = [
        "Means over seeds, per run.",
        "",
        "| Policy | Makespan s | P95 s | Mean latency s | Model loads | Evictions | Pod starts |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for p, s in policies.items():
        cells = [_fmt(c, 1) if c is not None else "n/a" for c in _raw(s)]
        out.append(f"| {p} | " + " | ".join(cells) + " |")
    return out


def _raw(s: PolicySummary) -> tuple[MeanCI | None, ...]:
    return (
        s.makespan_s,
        s.p95_latency_s,
        s.mean_latency_s,
        s.model_loads,
        s.evictions,
        s.pod_starts,
    )


def fallback_note(policies: Mapping[str, PolicySummary]) -> list[str]:
    """A warning when decisions fell back on a time limit: then results depend on load."""
    hit = [
        f"{p} {s.planner_fallbacks} of {s.planner_decisions}"
        for p, s in policies.items()
        if s.planner_fallbacks
    ]
    if not hit:
        return []
    return [
        "",
        f"Decisions that fell back to a greedy answer at the solver's time limit: "
        f"{'; '.join(hit)}. These depend on machine load, so reruns may differ.",
    ]


def ablation_table(policies: Mapping[str, PolicySummary]) -> list[str]:
    """``fate`` and each ablation present, with the change relative to ``fate``."""
    variants = [p for p in policies if is_fate(p)]
    if FATE not in policies or len(variants) < 2:
        return ["No ablation variants were run (they need `fate` and a `fate-*` policy)."]
    ref = policies[FATE]
    out = [
        "| Variant | Norm. makespan | Norm. P95 | Change vs fate (makespan / P95) "
        "| Makespan / LB |",
        "|---|---:|---:|---:|---:|",
    ]
    for p in [FATE] + [v for v in variants if v != FATE]:
        s = policies[p]
        delta = " / ".join(
            _signed(getattr(s, m).mean / getattr(ref, m).mean - 1.0) for m in METRICS
        )
        out.append(
            f"| {p} | {_fmt(s.normalized_makespan)} | {_fmt(s.normalized_p95)} | {delta} "
            f"| {_fmt(s.makespan_over_lower_bound, 2)} |"
        )
    return out


def sweep_tables(results: BenchResults) -> list[str]:
    """Per point: each main-table policy's normalised metric, and ``fate``'s gain."""
    points = results.points or []
    header = "| Policy | " + " | ".join(f"F = {p.prefix_fraction:g}" for p in points) + " |"
    rule = "|---|" + "---:|" * len(points)
    names = [p for p in results.policies if not is_fate(p)]
    names += [FATE] if FATE in results.policies else []
    prefixes = ", ".join(str(n) for n in sorted({p.prefixes for p in points}))
    out = [f"Shared-prefix fraction F swept with {prefixes} distinct prefixes."]
    for m, label in zip(METRICS, ("makespan", "P95"), strict=True):
        out += ["", f"### Normalised {label}", "", header, rule]
        for name in names:
            cells = [_fmt(getattr(pt.policies[name], m)) for pt in points]
            out.append(f"| {name} | " + " | ".join(cells) + " |")
        if FATE in results.policies:
            gains = [_fate_gain(pt.policies, m) for pt in points]
            out.append("| *fate gain vs best baseline* | " + " | ".join(gains) + " |")
    return out


def _fate_gain(policies: Mapping[str, PolicySummary], metric: Metric) -> str:
    best = best_baseline(policies, metric)
    if best is None:
        return "n/a"
    value = gain(getattr(policies[FATE], metric).mean, getattr(policies[best], metric).mean)
    return f"{_pct(value)} ({best})"


def _gain_vs(
    policies: Mapping[str, PolicySummary], s: PolicySummary, best: str | None, metric: Metric
) -> str:
    if best is None:
        return "n/a"
    return _pct(gain(getattr(s, metric).mean, getattr(policies[best], metric).mean))


def _fmt(x: MeanCI, digits: int = 3) -> str:
    if x.ci95 is None:
        return f"{x.mean:.{digits}f}"
    return f"{x.mean:.{digits}f} ± {x.ci95:.{digits}f}"


def _pct(x: float) -> str:
    return f"{_no_negative_zero(x * 100):.1f}%"


def _signed(x: float) -> str:
    return f"{_no_negative_zero(x * 100):+.1f}%"


def _no_negative_zero(x: float) -> float:
    """``-0.04`` prints as ``-0.0``; a change that rounds to zero is shown as ``0.0``."""
    return 0.0 if round(x, 1) == 0 else x
