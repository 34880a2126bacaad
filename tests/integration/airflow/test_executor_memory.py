"""Memory of a long-running `FateExecutor`: flat once warm, however many DAG runs finish.

The real executor (FATE policy, the ``fate_*`` store in SQLite) is driven the way
Airflow's scheduler drives it (`driven_executor`), a few runs in flight at once, with an
instant launcher and Airflow's reads answered by the driver.

``FATE_MEMORY_RUNS`` sets how many runs go through (default 400; the recorded figure in
``docs/reliability.md`` used 2000). Python allocations still alive that were made after
warm-up (tracemalloc) and the planner's graph are sampled every ``SAMPLE_EVERY`` runs.
"""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_fate.executor.frontier import FORGET_AFTER
from tests.integration.airflow.driven_executor import (
    TASKS,
    FakeAirflow,
    InstantLauncher,
    driven_executor,
    heartbeat,
    queue_new_runs,
)

pytest.importorskip("airflow")

RUNS = int(os.environ.get("FATE_MEMORY_RUNS", "400"))
WARM_UP = 150
SAMPLE_EVERY = 25
IN_FLIGHT = 6
GROWTH_LIMIT_BYTES = 1_000_000
"""How much higher the live memory of the last third of the samples may peak than that
of the first third (one batch of finished runs is forgotten every `FORGET_AFTER` runs,
so memory saws up and down; what must not happen is the saw climbing)."""


@pytest.fixture
def executor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Any, FakeAirflow, InstantLauncher]]:
    with driven_executor(tmp_path, monkeypatch) as driven:
        yield driven


def test_executor_memory_is_flat_after_warm_up(executor: Any) -> None:
    ex, fake, launcher = executor
    rt = ex._rt
    samples: list[tuple[int, int, int]] = []  # finished runs, live bytes, graph stages
    tracing = False
    while len(fake.finished) < RUNS:
        queue_new_runs(ex, fake, IN_FLIGHT, RUNS)
        heartbeat(ex, fake)
        done = len(fake.finished)
        if done >= WARM_UP and not tracing:
            tracemalloc.start()
            tracing = True
        if tracing and done % SAMPLE_EVERY == 0 and (not samples or samples[-1][0] != done):
            samples.append(
                (done, tracemalloc.get_traced_memory()[0], len(rt.planner.state.graph.stages))
            )
    tracemalloc.stop()

    assert launcher.launches == RUNS * len(TASKS)
    assert rt.planner.forgotten >= RUNS - FORGET_AFTER - IN_FLIGHT
    stage_bound = (FORGET_AFTER + IN_FLIGHT + 1) * len(TASKS)
    report = ", ".join(f"{n} runs: {b / 1e3:.0f} kB, {s} stages" for n, b, s in samples)
    print(f"\nlive memory allocated since warm-up ({RUNS} runs): {report}")
    assert max(s for _, _, s in samples) <= stage_bound, report
    third = max(len(samples) // 3, 1)
    early = max(b for _, b, _ in samples[:third])
    late = max(b for _, b, _ in samples[-third:])
    assert late - early <= GROWTH_LIMIT_BYTES, report
