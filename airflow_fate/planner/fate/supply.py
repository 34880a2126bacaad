"""What a model's copies are worth to the stages that will need them (congestion-aware).

The value of residency is not "is the model loaded somewhere" but "how long will the
stages that need it wait". For a model m, its *copies* are the GPU groups that hold it
(or will: a queued stage loads it), each free at some time. Its *demand* is the
look-ahead stages that use m, plus the stages that workflows yet to arrive will bring,
projected from the rate at which m's stages have arrived so far (a hot model needs more
copies than the stages visible now can justify). `demand_cost` plays that demand, in
order of readiness, onto the copies by earliest free time (each takes ``run`` seconds
there), and charges each stage ``min(wait, cold option)``: a stage that would wait
longer than its cold option (see `Need`) takes that instead and leaves the copies
alone. The sum, weighted by each stage's discount, is the future cost of that supply.

A placement changes the supply: on a copy it makes that copy busy longer (the stages
behind it wait); on a cold group it adds a copy free when the stage ends; a load that
evicts m' removes a copy of m'. The difference of `demand_cost` before and after is the
residency term (credit when negative, the congestion a stage imposes when positive) and
the eviction debit of FATE's score.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

MAX_DEMAND = 32
"""Demand stages played per model (most certain first); bounds the planner's work."""


@dataclass(frozen=True, slots=True)
class Copy:
    """A GPU group holding a model: its GPUs, node and when it frees (absolute seconds)."""

    gpus: tuple[int, ...]
    node: int
    free_at: float


@dataclass(frozen=True, slots=True)
class Need:
    """A stage needing a model: when it is ready, its discount, warm run and cold option.

    ``cold_s`` is the best the stage can do without a copy: the earliest a fitting GPU
    group frees on any node plus loading the model there from that node's best tier.
    """

    ready_at: float
    discount: float
    run_s: float
    cold_s: float
    stage: int = -1
    """The stage's uid, or -1 for a projected stage of a workflow yet to arrive."""


def projected_needs(
    rate: float,
    run_s: float,
    cold_s: float,
    now: float,
    window_s: float,
    discount: float,
    keep_rate: bool,
) -> list[Need]:
    """The stages of workflows yet to arrive, as at most `MAX_DEMAND` needs.

    ``expected = rate * window_s`` stages are expected over the window, as ``count =
    min(MAX_DEMAND, round(expected))`` evenly spaced needs. With ``keep_rate`` each need
    stands for ``expected / count`` stages (many past `MAX_DEMAND`; within a rounding of
    one below it): it runs that many times ``run_s`` on a copy and weighs that many times
    ``discount``, so the needs ask of the copies what the projected stages would. Without
    it each need is one stage and a hot model's projection is cut to `MAX_DEMAND` stages
    over the whole window: at five stages a second over 60 s, a tenth of its demand, so
    its copies look idle and a new one looks worth little.
    """
    expected = rate * window_s
    count = min(MAX_DEMAND, round(expected))
    if count <= 0:
        return []
    step = window_s / count
    each = expected / count if keep_rate else 1.0
    return [
        Need(now + (i + 0.5) * step, discount * each, run_s * each, cold_s) for i in range(count)
    ]


def demand_cost(needs: list[Need], copies: list[Copy], now: float) -> float:
    """Discounted seconds the needs (sorted by ``ready_at``) pay in waits or cold loads."""
    free = [c.free_at if c.free_at > now else now for c in copies]
    heapq.heapify(free)
    total = 0.0
    for need in needs[:MAX_DEMAND]:
        ready = need.ready_at
        if free:
            head = free[0]
            wait = head - ready if head > ready else 0.0
            if wait < need.cold_s:
                total += need.discount * wait
                heapq.heapreplace(free, (head if head > ready else ready) + need.run_s)
                continue
        total += need.discount * need.cold_s
    return total
