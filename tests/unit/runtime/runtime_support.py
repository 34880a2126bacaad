"""Helpers for the runtime tests (the fixtures live in ``conftest.py``)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from airflow_fate.runtime.binding import DeviceBinding
from airflow_fate.runtime.protocol import GenerateTask, RunStage, StageRequest, StageResult

LOCAL = Path(__file__).resolve().parents[3] / "examples" / "local"
SMOL = "smollm2-135m-instruct"
MINI = "all-minilm-l6-v2"
MIB = 1024**2
FIRST_TASK = GenerateTask(prompts=["Name the capital of France."], max_new_tokens=8)


def cpu_binding(memory_mib: int = 2048, prefix_mib: int = 64) -> DeviceBinding:
    return DeviceBinding(
        ids=["cpu0"],
        platform="cpu",
        memory_bytes=memory_mib * MIB,
        prefix_bytes=prefix_mib * MIB,
        threads=1,
    )


def run_stage(runtime: object, key: str, request: StageRequest) -> tuple[StageResult, float]:
    """Run one stage in-process; (result, wall seconds)."""
    from airflow_fate.runtime.device import DeviceRuntime

    assert isinstance(runtime, DeviceRuntime)
    t0 = time.perf_counter()
    result = runtime.run(RunStage(key=key, devices=runtime.binding.ids, request=request))
    return result, time.perf_counter() - t0


@dataclass(frozen=True)
class WarmRuntime:
    """A runtime whose first stage (a cold SmolLM2 load) has run."""

    runtime: object
    first: StageResult
    first_wall_s: float
