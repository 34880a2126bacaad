"""The workload suites: which templates, in what mix, under which options.

- ``real-dag``: the ten published-application templates of `templates.REAL_DAG`, mixed
  uniformly (each workflow draws its template independently, so the arrivals of each
  template are themselves Poisson).
- ``prefix-reuse``: the controlled `shared_context_fanout` shape with a prefix fraction
  ``F`` (``--prefix-fraction``, default 0.5) and ``P`` distinct prefixes
  (``--prefixes``, default 4); the benchmark sweeps F over `PREFIX_FRACTION_SWEEP` and
  P over `PREFIX_COUNT_SWEEP`.

Each suite also names its *calibration mix*, the template mix whose mean work sets the
arrival rate for a load (see `airflow_fate.workloads.load`). For ``prefix-reuse`` that is
the F = 0, P = 1 variant: the expected tokens do not depend on F, and pinning the
calibration makes every point of a sweep share the same arrival times for one seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

from airflow_fate.errors import InputError
from airflow_fate.workloads.template import Template
from airflow_fate.workloads.templates import REAL_DAG
from airflow_fate.workloads.templates.shared_context_fanout import template as fanout

Mix = tuple[tuple[Template, float], ...]
"""Templates with their relative weights."""

PREFIX_FRACTION_SWEEP = (0.0, 0.25, 0.5, 0.75, 0.9)
PREFIX_COUNT_SWEEP = (1, 2, 4, 8, 16)
DEFAULT_PREFIX_FRACTION = 0.5
DEFAULT_PREFIXES = 4


@dataclass(frozen=True)
class SuiteOptions:
    """Suite-specific settings; ``None`` means "not given"."""

    prefix_fraction: float | None = None
    prefixes: int | None = None


@dataclass(frozen=True)
class Suite:
    """A named template mix.

    Attributes:
        name: the ``--suite`` value.
        summary: one line for ``--help``.
        options: the `SuiteOptions` fields this suite accepts.
        mix: the template mix for resolved options.
        calibration_mix: the mix whose mean work defines the load (see module docstring).
        defaults: values of the accepted options when not given.
    """

    name: str
    summary: str
    options: frozenset[str]
    mix: Callable[[SuiteOptions], Mix]
    calibration_mix: Callable[[SuiteOptions], Mix]
    defaults: SuiteOptions = SuiteOptions()

    def resolve(self, options: SuiteOptions) -> SuiteOptions:
        """Given options over this suite's defaults; `InputError` naming the flag if invalid."""
        resolved = self.defaults
        for field in fields(SuiteOptions):
            given = getattr(options, field.name)
            if given is not None and field.name not in self.options:
                owners = ", ".join(s.name for s in SUITES.values() if field.name in s.options)
                raise InputError(
                    _FLAGS[field.name], "", f"only applies to --suite {owners}, not {self.name}"
                )
            if given is not None:
                resolved = replace(resolved, **{field.name: given})
        _check(resolved)
        return resolved


def _check(options: SuiteOptions) -> None:
    fraction, prefixes = options.prefix_fraction, options.prefixes
    if fraction is not None and not (math.isfinite(fraction) and 0 <= fraction < 1):
        raise InputError(_FLAGS["prefix_fraction"], "", f"must be in [0, 1), got {fraction}")
    if prefixes is not None and prefixes < 1:
        raise InputError(_FLAGS["prefixes"], "", f"must be at least 1, got {prefixes}")


PREFIX_REUSE = "prefix-reuse"
_FLAGS = {"prefix_fraction": "--prefix-fraction", "prefixes": "--prefixes"}
_REAL_DAG_MIX: Mix = tuple((t, 1.0) for t in REAL_DAG)
_FANOUT_CALIBRATION: Mix = ((fanout(0.0, 1), 1.0),)


def _fanout_mix(options: SuiteOptions) -> Mix:
    assert options.prefix_fraction is not None and options.prefixes is not None
    return ((fanout(options.prefix_fraction, options.prefixes), 1.0),)


SUITES: dict[str, Suite] = {
    "real-dag": Suite(
        name="real-dag",
        summary="10 templates from published LLM applications, mixed uniformly",
        options=frozenset(),
        mix=lambda _: _REAL_DAG_MIX,
        calibration_mix=lambda _: _REAL_DAG_MIX,
    ),
    PREFIX_REUSE: Suite(
        name=PREFIX_REUSE,
        summary="controlled fan-out + join sweeping the shared-prefix fraction and count",
        options=frozenset(_FLAGS),
        mix=_fanout_mix,
        calibration_mix=lambda _: _FANOUT_CALIBRATION,
        defaults=SuiteOptions(DEFAULT_PREFIX_FRACTION, DEFAULT_PREFIXES),
    ),
}


def get_suite(name: str) -> Suite:
    """The suite called ``name``; `InputError` on ``--suite`` otherwise."""
    suite = SUITES.get(name)
    if suite is None:
        raise InputError("--suite", "", f"unknown suite {name!r} (known: {', '.join(SUITES)})")
    return suite
