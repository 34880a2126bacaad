"""`PodStartCorrection`: the configured pod start, corrected by measured starts."""

from __future__ import annotations

import pytest

from airflow_fate.cost.correction import DECAY
from airflow_fate.cost.pod_start import PodStartCorrection


def test_the_configured_figure_stands_until_a_start_is_measured() -> None:
    correction = PodStartCorrection(5.0)
    assert (correction.value, correction.samples) == (5.0, 0)
    correction.observe(0.0)  # nothing measured (a pod taken over, not started)
    assert correction.samples == 0


def test_measured_starts_replace_the_guess_recent_ones_weighing_more() -> None:
    correction = PodStartCorrection(5.0)
    assert correction.observe(20.0) == pytest.approx(20.0)
    expected = (DECAY * 20.0 + 10.0) / (DECAY + 1.0)
    assert correction.observe(10.0) == pytest.approx(expected)
    for _ in range(30):
        correction.observe(12.0)
    assert correction.value == pytest.approx(12.0, rel=0.01)


def test_a_zero_prior_learns_the_measured_figure() -> None:
    correction = PodStartCorrection(0.0)
    assert correction.observe(8.0) == pytest.approx(8.0)


def test_negative_prior_is_refused() -> None:
    with pytest.raises(ValueError, match="prior_s"):
        PodStartCorrection(-1.0)
