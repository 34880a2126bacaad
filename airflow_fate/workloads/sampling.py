"""Seeded draws of token counts, fan-out widths and payload sizes for the templates.

Published figures (MetaGPT's logs, ShareGPT statistics, a paper's chunk size) are means;
real requests scatter around them with a long right tail, since prompt and answer
lengths are close to log-normal in public traces. `around` draws such a count with a
given mean and coefficient of variation, clipped to a plausible range so that one draw
cannot turn a 300-token answer into a 30k-token one. Clipping moves the mean by a few
percent at most for the coefficients the templates use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

import numpy as np

_T = TypeVar("_T")

BYTES_PER_TEXT_TOKEN = 4
"""UTF-8 bytes of one BPE token of English text (about four characters per token)."""

EMBEDDING_BYTES = 1024 * 4
"""One bge-large embedding: 1,024 float32 values."""

MB = 1_000_000


def around(
    rng: np.random.Generator, mean: float, cv: float, *, lo: int = 1, hi: int | None = None
) -> int:
    """A log-normal integer with expectation ``mean`` and coefficient of variation ``cv``.

    Args:
        rng: the workflow's generator.
        mean: the published or chosen mean.
        cv: standard deviation over mean; 0 returns ``round(mean)``.
        lo: smallest value returned.
        hi: largest value returned; four times the mean when omitted.
    """
    top = hi if hi is not None else max(lo, round(4 * mean))
    return int(min(max(round(mean * factor(rng, cv)), lo), top))


def factor(rng: np.random.Generator, cv: float) -> float:
    """A log-normal multiplier with expectation 1 and coefficient of variation ``cv``.

    Always consumes exactly one normal draw (none when ``cv`` is 0), so callers can keep
    their random streams aligned across settings.
    """
    if cv <= 0:
        return 1.0
    sigma2 = math.log1p(cv * cv)
    return float(rng.lognormal(-sigma2 / 2, math.sqrt(sigma2)))


def count(rng: np.random.Generator, lo: int, hi: int) -> int:
    """A uniform integer in ``[lo, hi]`` (both ends included)."""
    return int(rng.integers(lo, hi + 1))


def pick(rng: np.random.Generator, options: Sequence[_T], weights: Sequence[float]) -> _T:
    """One of ``options`` with probabilities proportional to ``weights``."""
    p = np.asarray(weights, dtype=float)
    return options[int(rng.choice(len(options), p=p / p.sum()))]


def text_mb(tokens: int) -> float:
    """MB of ``tokens`` tokens of text passed to a child stage."""
    return round(tokens * BYTES_PER_TEXT_TOKEN / MB, 6)


def embeddings_mb(vectors: int) -> float:
    """MB of ``vectors`` bge-large embeddings passed to a child stage."""
    return round(vectors * EMBEDDING_BYTES / MB, 6)
