"""How far the cost model's estimates are from measured stage times.

For each stage the live engine records, at the moment it starts, the *profile* estimate
(catalog rates and bandwidths, no correction) and the *corrected* estimate (with the
online factors in force then), and, when it ends, the measured seconds. The errors here
are what ``airflow-fate run`` and the local comparison report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from airflow_fate.domain.plan import StageCost


@dataclass(frozen=True, slots=True)
class CostSample:
    """Estimated and measured run seconds of one stage (wait excluded)."""

    stage: str
    model: str
    gpu_type: str
    profile: StageCost
    corrected: StageCost
    measured: StageCost


@dataclass(frozen=True, slots=True)
class EstimateError:
    """Relative errors of run-time estimates, profile vs corrected.

    Attributes:
        stages: how many stages were compared.
        profile_mape: mean over stages of ``|estimate - measured| / measured`` (short
            stages weigh as much as long ones).
        corrected_mape: the same with the corrected estimates.
        profile_wape: ``sum |estimate - measured| / sum measured``: errors weighted by
            how long stages run, which is what a schedule feels.
        corrected_wape: the same with the corrected estimates.
    """

    stages: int
    profile_mape: float
    corrected_mape: float
    profile_wape: float
    corrected_wape: float


def estimate_error(samples: Sequence[CostSample]) -> EstimateError:
    """Errors of ``samples`` (stages with no measured time are left out)."""
    rows = [s for s in samples if s.measured.run > 0]
    if not rows:
        return EstimateError(0, 0.0, 0.0, 0.0, 0.0)
    profile = [s.profile.run for s in rows]
    corrected = [s.corrected.run for s in rows]
    measured = [s.measured.run for s in rows]
    return EstimateError(
        stages=len(rows),
        profile_mape=_mape(profile, measured),
        corrected_mape=_mape(corrected, measured),
        profile_wape=_wape(profile, measured),
        corrected_wape=_wape(corrected, measured),
    )


def with_factors(sample: CostSample, compute: float, load: float) -> CostSample:
    """``sample`` with its corrected estimate replaced by profile x the given factors.

    The cost model scales prefill and decode by the compute factor and load by the load
    factor (input transfers are not corrected), so this is what a `CostModel` with those
    factors would have estimated for the same stage in the same state.
    """
    p = sample.profile
    corrected = StageCost(
        wait=p.wait,
        load=p.load * load,
        input=p.input,
        prefill=p.prefill * compute,
        decode=p.decode * compute,
    )
    return replace(sample, corrected=corrected)


def _mape(estimated: Sequence[float], measured: Sequence[float]) -> float:
    return sum(abs(e - m) / m for e, m in zip(estimated, measured, strict=True)) / len(measured)


def _wape(estimated: Sequence[float], measured: Sequence[float]) -> float:
    return sum(abs(e - m) for e, m in zip(estimated, measured, strict=True)) / sum(measured)
