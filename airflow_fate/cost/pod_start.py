"""The pod start figure (``cluster.yaml`` ``pod_start_s``), corrected online from measurements.

A worker pod's start (asked for -> its agent takes work: scheduling, image, container and
Python start) is part of the predicted load of the first stage on its GPU set (ADR 0008).
The configured figure is a guess; each measured start corrects it the way measured loads
correct load times (`airflow_fate.cost.correction.Ratio`: decayed sums of measured over
configured seconds), so the figure follows the cluster as it is today.
"""

from __future__ import annotations

from airflow_fate.cost.correction import Ratio


class PodStartCorrection:
    """``pod_start_s`` from a configured prior and the starts measured since.

    Args:
        prior_s: the configured figure (``cluster.yaml``); used until a start is measured.
    """

    def __init__(self, prior_s: float) -> None:
        if prior_s < 0:
            raise ValueError(f"prior_s must be >= 0, got {prior_s}")
        self.prior_s = prior_s
        self._ratio = Ratio()

    @property
    def samples(self) -> int:
        return self._ratio.samples

    @property
    def value(self) -> float:
        """The corrected figure in seconds."""
        factor = self._ratio.factor
        if factor is None:
            return self.prior_s
        return factor * (self.prior_s if self.prior_s > 0 else 1.0)

    def observe(self, measured_s: float) -> float:
        """Learn from one measured start; the corrected figure."""
        if measured_s > 0:
            self._ratio.add(measured_s, self.prior_s if self.prior_s > 0 else 1.0)
        return self.value
