"""What a policy returns: assignments of stages to GPU sets, with their reasons.

Policies never mutate state; they return an immutable `Plan`. Each assignment may carry a
`DecisionRecord` ("why here"): the predicted cost breakdown, the future-state terms that
tipped the choice and the runner-up, which the store and UI show to users.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class StageCost:
    """Predicted (or actual) seconds of one stage on one GPU set, by component."""

    wait: float
    load: float
    input: float
    prefill: float
    decode: float

    @property
    def run(self) -> float:
        """Seconds the GPUs are occupied (everything but the wait)."""
        return self.load + self.input + self.prefill + self.decode

    @property
    def total(self) -> float:
        """Seconds from now until the stage finishes."""
        return self.wait + self.run

    def as_dict(self) -> dict[str, float]:
        return {
            "wait": self.wait,
            "load": self.load,
            "input": self.input,
            "prefill": self.prefill,
            "decode": self.decode,
        }


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """Why a stage went where it went."""

    cost: StageCost
    score: float
    future_terms: tuple[tuple[str, float], ...] = ()
    runner_up: tuple[int, ...] | None = None
    runner_up_score: float | None = None
    runner_up_cost: StageCost | None = None
    """The runner-up's predicted breakdown, so "why here" can compare component by component."""
    runner_up_terms: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Assignment:
    """Run stage ``stage`` (uid) on global GPU indices ``gpus`` (one node)."""

    stage: int
    gpus: tuple[int, ...]
    record: DecisionRecord | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """A policy's decision for one epoch.

    Stages of the frontier that are not assigned stay ready and are offered again at the
    next decision epoch. ``wake_at`` asks for an epoch at that time even if no event
    arrives (used by policies that defer a stage to wait for a warm GPU). ``fallback``
    marks a decision made by a fallback path (e.g. a solver timeout).
    """

    assignments: tuple[Assignment, ...] = field(default_factory=tuple)
    wake_at: float | None = None
    fallback: bool = False
