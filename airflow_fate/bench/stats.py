"""Benchmark statistics: per-seed normalisation and mean with a 95% t interval.

Every policy runs on the same workloads and seeds, so a seed's RoundRobin run is the
natural yardstick for that seed: dividing by it removes most of the seed-to-seed
variation (a heavy draw slows every policy) before the seeds are averaged. The interval
is then over seeds, the independent replications, with Student's t because five seeds
are far too few for the normal approximation.

The t critical values are tabulated (two-sided 95%, df 1..30, 40, 60, 120) instead of
taken from scipy, which the project does not depend on. Between tabulated degrees of
freedom the smaller df's value is used, which errs wide; beyond 120 the normal 1.96.
One sample has no spread to estimate: its interval is ``None`` (``null`` in JSON).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

_K = TypeVar("_K", bound=Hashable)

_T975: dict[int, float] = {
    1: 12.7062,
    2: 4.3027,
    3: 3.1824,
    4: 2.7764,
    5: 2.5706,
    6: 2.4469,
    7: 2.3646,
    8: 2.3060,
    9: 2.2622,
    10: 2.2281,
    11: 2.2010,
    12: 2.1788,
    13: 2.1604,
    14: 2.1448,
    15: 2.1314,
    16: 2.1199,
    17: 2.1098,
    18: 2.1009,
    19: 2.0930,
    20: 2.0860,
    21: 2.0796,
    22: 2.0739,
    23: 2.0687,
    24: 2.0639,
    25: 2.0595,
    26: 2.0555,
    27: 2.0518,
    28: 2.0484,
    29: 2.0452,
    30: 2.0423,
    40: 2.0211,
    60: 2.0003,
    120: 1.9799,
}
_Z975 = 1.96


def t_critical(df: int) -> float:
    """Two-sided 95% critical value of Student's t with ``df`` degrees of freedom.

    Raises:
        ValueError: ``df`` < 1 (no spread can be estimated).
    """
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df > max(_T975):
        return _Z975
    return _T975[max(k for k in _T975 if k <= df)]


@dataclass(frozen=True)
class Estimate:
    """A sample mean and the half-width of its 95% confidence interval.

    Attributes:
        mean: the arithmetic mean.
        ci95: half-width ``t * s / sqrt(n)``; ``None`` for a single sample.
    """

    mean: float
    ci95: float | None


def mean_ci(samples: Sequence[float]) -> Estimate:
    """Mean and 95% t-interval half-width of ``samples`` (sample std, ``n - 1``).

    Raises:
        ValueError: no samples.
    """
    n = len(samples)
    if n == 0:
        raise ValueError("mean_ci needs at least one sample")
    mean = math.fsum(samples) / n
    if n == 1:
        return Estimate(mean, None)
    var = math.fsum((x - mean) ** 2 for x in samples) / (n - 1)
    return Estimate(mean, t_critical(n - 1) * math.sqrt(var / n))


def normalise(
    values: Mapping[str, Mapping[_K, float]], reference: str
) -> dict[str, dict[_K, float]]:
    """Divide each policy's value on a run key by the ``reference`` policy's on that key.

    Args:
        values: policy -> run key -> metric (e.g. makespan seconds); the key is the
            seed, or ``(seed, sweep point)`` for a sweep.
        reference: the yardstick policy, present on every key any policy has.

    Returns:
        policy -> key -> ratio; the reference maps to 1.0 on every key.

    Raises:
        ValueError: the reference is missing, or not positive on a key another policy ran.
    """
    ref = values.get(reference)
    if ref is None:
        raise ValueError(f"reference policy {reference!r} has no results")
    out: dict[str, dict[_K, float]] = {}
    for policy, per_key in values.items():
        ratios: dict[_K, float] = {}
        for key, value in per_key.items():
            base = ref.get(key)
            if base is None or base <= 0:
                raise ValueError(f"{reference!r} has no positive value on {key!r}")
            ratios[key] = value / base
        out[policy] = ratios
    return out
