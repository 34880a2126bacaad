"""Hypothesis profiles for the input fuzzing, and a count of the cases each target ran.

``FATE_FUZZ_PROFILE`` picks the profile: ``ci`` (the default; a few dozen derandomised
cases per target, so CI stays fast and repeatable) or ``campaign`` (thousands of random
cases per target; the recorded run in ``docs/reliability.md``). The count printed at the
end of the session is what the targets actually ran, not what the profile asked for.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from tests.fuzz.checks import CASES

PROFILE_ENV = "FATE_FUZZ_PROFILE"

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

settings.register_profile(
    "ci", max_examples=40, derandomize=True, deadline=None, suppress_health_check=_SLOW_OK
)
settings.register_profile(
    "campaign", max_examples=1500, deadline=None, suppress_health_check=_SLOW_OK
)
settings.load_profile(os.environ.get(PROFILE_ENV, "ci"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not CASES:
        return
    profile = os.environ.get(PROFILE_ENV, "ci")
    terminalreporter.section(f"fuzz cases run (profile {profile})")
    for target, n in sorted(CASES.items()):
        terminalreporter.write_line(f"{target:<40} {n:>7}")
    total = sum(n for target, n in CASES.items() if " (" not in target)  # not sub-counts
    terminalreporter.write_line(f"{'total':<40} {total:>7}")
