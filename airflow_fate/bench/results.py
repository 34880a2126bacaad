"""The ``results.json`` document and how job results are summarised into it.

Per policy (top level, and per sweep point for ``prefix-reuse``)::

    normalized_makespan, normalized_p95   makespan / P95 latency over RoundRobin's on the
                                          same seed (and point), then mean and 95% CI over
                                          seeds (see `airflow_fate.bench.stats`)
    makespan_s, p95_latency_s             the raw seconds, mean and CI over seeds
    mean_latency_s                        mean workflow latency in seconds, the same way
    makespan_over_lower_bound             makespan over the simulator's lower bound
    model_loads, evictions, pod_starts    counts per run, mean and CI over seeds
    planner_p99_ms                        the worst run's p99 wall-clock ms per decision
    planner_decisions, planner_fallbacks  ``plan`` calls over all runs, and how many fell
                                          back to a greedy answer (a solver time limit)

For a sweep, the top-level ``policies`` block aggregates the points: each metric is first
averaged over the points of one seed, then summarised over seeds, so the interval stays
one over independent replications (the points of one seed share its arrival times).
``ci95`` is ``null`` with a single seed. ``planner_p99_ms`` and ``planner_fallbacks``
depend on wall-clock time; so does everything a policy decides after a fallback, which is
why the fallbacks are reported: with none, reruns give the same document apart from
``planner_p99_ms``, whatever the number of workers.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence

from pydantic import BaseModel

from airflow_fate.bench.runner import JobResult, Point
from airflow_fate.bench.stats import mean_ci, normalise
from airflow_fate.state.hosting import HostingMode

REFERENCE = "round-robin"
"""The policy every metric is normalised by."""

_Key = tuple[int, Point | None]
"""A run of one policy: its seed and sweep point."""


class MeanCI(BaseModel):
    """A mean over seeds with the half-width of its 95% t interval (``None``: one seed)."""

    mean: float
    ci95: float | None


class PolicySummary(BaseModel):
    """One policy's metrics, summarised over seeds."""

    normalized_makespan: MeanCI
    normalized_p95: MeanCI
    makespan_s: MeanCI
    p95_latency_s: MeanCI
    mean_latency_s: MeanCI | None = None
    makespan_over_lower_bound: MeanCI
    model_loads: MeanCI | None = None
    evictions: MeanCI | None = None
    pod_starts: MeanCI | None = None
    planner_p99_ms: float
    planner_decisions: int
    planner_fallbacks: int


class PointResults(BaseModel):
    """The policies at one point of the prefix-reuse sweep."""

    prefix_fraction: float
    prefixes: int
    policies: dict[str, PolicySummary]


class BenchResults(BaseModel):
    """The ``results.json`` document (see the module docstring for the metrics)."""

    suite: str
    seeds: list[int]
    workflows: int
    load: float
    noise: float
    launcher: HostingMode = "local"
    normalized_by: str = REFERENCE
    policies: dict[str, PolicySummary]
    points: list[PointResults] | None = None


def summarise_runs(
    results: Sequence[JobResult],
    *,
    suite: str,
    seeds: Sequence[int],
    workflows: int,
    load: float,
    noise: float,
    launcher: HostingMode = "local",
) -> BenchResults:
    """Summarise job results (every policy on every seed and point) into `BenchResults`.

    Raises:
        ValueError: RoundRobin did not run on every seed and point.
    """
    points = sorted({r.job.point for r in results if r.job.point is not None})
    per_point = [
        PointResults(
            prefix_fraction=p.prefix_fraction,
            prefixes=p.prefixes,
            policies=_summarise([r for r in results if r.job.point == p]),
        )
        for p in points
    ]
    return BenchResults(
        suite=suite,
        seeds=list(seeds),
        workflows=workflows,
        load=load,
        noise=noise,
        launcher=launcher,
        policies=_summarise(results),
        points=per_point or None,
    )


def _summarise(results: Sequence[JobResult]) -> dict[str, PolicySummary]:
    """Per policy, in first-seen order; points are averaged within each seed first."""
    makespan = _by_policy(results, lambda r: r.makespan_s)
    p95 = _by_policy(results, lambda r: r.p95_latency_s)
    mean_latency = _by_policy(results, lambda r: r.mean_latency_s)
    over_lb = _by_policy(results, lambda r: r.makespan_s / r.lower_bound_s)
    loads = _by_policy(results, lambda r: r.model_loads)
    evictions = _by_policy(results, lambda r: r.evictions)
    pod_starts = _by_policy(results, lambda r: r.pod_starts)
    norm_makespan = normalise(makespan, REFERENCE)
    norm_p95 = normalise(p95, REFERENCE)
    p99: dict[str, float] = defaultdict(float)
    decisions: dict[str, int] = defaultdict(int)
    fallbacks: dict[str, int] = defaultdict(int)
    for r in results:
        p99[r.job.policy] = max(p99[r.job.policy], r.planner_p99_ms)
        decisions[r.job.policy] += r.decisions
        fallbacks[r.job.policy] += r.fallbacks
    return {
        policy: PolicySummary(
            normalized_makespan=_over_seeds(norm_makespan[policy]),
            normalized_p95=_over_seeds(norm_p95[policy]),
            makespan_s=_over_seeds(makespan[policy]),
            p95_latency_s=_over_seeds(p95[policy]),
            mean_latency_s=_over_seeds(mean_latency[policy]),
            makespan_over_lower_bound=_over_seeds(over_lb[policy]),
            model_loads=_over_seeds(loads[policy]),
            evictions=_over_seeds(evictions[policy]),
            pod_starts=_over_seeds(pod_starts[policy]),
            planner_p99_ms=_round(p99[policy]),
            planner_decisions=decisions[policy],
            planner_fallbacks=fallbacks[policy],
        )
        for policy in makespan
    }


def _by_policy(
    results: Iterable[JobResult], metric: Callable[[JobResult], float]
) -> dict[str, dict[_Key, float]]:
    out: dict[str, dict[_Key, float]] = {}
    for r in results:
        out.setdefault(r.job.policy, {})[(r.job.seed, r.job.point)] = metric(r)
    return out


def _over_seeds(values: dict[_Key, float]) -> MeanCI:
    """Average each seed's points, then mean and CI over the seeds (in seed order)."""
    per_seed: dict[int, list[float]] = defaultdict(list)
    for (seed, _), v in values.items():
        per_seed[seed].append(v)
    samples = [math.fsum(v) / len(v) for _, v in sorted(per_seed.items())]
    est = mean_ci(samples)
    return MeanCI(mean=_round(est.mean), ci95=None if est.ci95 is None else _round(est.ci95))


def _round(x: float) -> float:
    """Six decimal places keep the JSON readable and stable across platforms."""
    return round(x, 6)
