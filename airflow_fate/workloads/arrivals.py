"""Poisson arrivals: exponential inter-arrival gaps from a seeded stream.

The first workflow arrives at 0 (a run starts with work) and each later one after an
independent exponential gap of mean ``1 / rate``, so the count of arrivals in any window
after the first is Poisson. Gaps are drawn as standard exponentials and then scaled,
which makes the times for rate ``2r`` exactly half those for ``r`` with the same stream.
"""

from __future__ import annotations

import numpy as np

TIME_DECIMALS = 6
"""Arrival times are rounded to microseconds so files stay short and stable."""


def poisson_arrivals(rng: np.random.Generator, count: int, rate: float) -> list[float]:
    """``count`` non-decreasing arrival times in seconds, the first at 0.

    Args:
        rng: the arrival stream (kept apart from the template draws).
        count: number of workflows.
        rate: arrivals per second, > 0.
    """
    if rate <= 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    gaps = rng.standard_exponential(max(count - 1, 0))
    times = np.concatenate(([0.0], np.cumsum(gaps))) / rate
    return [round(float(t), TIME_DECIMALS) for t in times[:count]]
