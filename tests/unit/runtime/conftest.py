"""Shared runtime fixtures: the example catalog's real models and one warm CPU runtime.

Loading SmolLM2 costs 16-17 s here, so one in-process `DeviceRuntime` is built per session
and the first stage it ran (the cold load) is kept for the residency tests to compare.
"""

from __future__ import annotations

import pytest
from runtime_support import FIRST_TASK, LOCAL, MINI, SMOL, WarmRuntime, cpu_binding, run_stage

from airflow_fate.domain.loaders import load_models
from airflow_fate.domain.models import ModelCatalog
from airflow_fate.runtime.protocol import ModelSource, StageRequest
from airflow_fate.runtime.registry import resolve_model


@pytest.fixture(scope="session")
def local_catalog() -> ModelCatalog:
    return load_models(LOCAL / "models.yaml")


@pytest.fixture(scope="session")
def smol(local_catalog: ModelCatalog) -> ModelSource:
    return resolve_model(SMOL, local_catalog, LOCAL)


@pytest.fixture(scope="session")
def mini(local_catalog: ModelCatalog) -> ModelSource:
    return resolve_model(MINI, local_catalog, LOCAL)


@pytest.fixture(scope="session")
def warm(smol: ModelSource) -> WarmRuntime:
    from airflow_fate.runtime.device import DeviceRuntime

    runtime = DeviceRuntime(cpu_binding())
    first, wall = run_stage(runtime, "first", StageRequest(model=smol, task=FIRST_TASK))
    return WarmRuntime(runtime, first, wall)
