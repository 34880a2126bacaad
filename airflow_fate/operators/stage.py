"""What every FATE operator does at run time, without Airflow: find the catalog, build
the runtime request, run it on the assigned devices, and summarise what was measured.

Kept free of Airflow imports so it is unit-testable on its own; `operators.llm` wraps it
in `BaseOperator` subclasses.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow_fate.domain.loaders import load_models
from airflow_fate.errors import InputError
from airflow_fate.operators.device_client import run_stage
from airflow_fate.operators.placement import ENV_MODELS, DevicePlacement
from airflow_fate.runtime.errors import StageError
from airflow_fate.runtime.protocol import (
    FailureReason,
    ModelSource,
    StageRequest,
    StageResult,
    Task,
)
from airflow_fate.runtime.registry import resolve_model

MEASURED_XCOM_KEY = "fate_measured"
"""XCom key under which a stage pushes its measured breakdown (the executor reads it)."""

RETRYABLE: frozenset[FailureReason] = frozenset(
    {"worker-died", "worker-broken", "timeout", "out-of-memory", "cancelled", "error"}
)
"""Failures a retry may cure; the others (unknown model, bad request...) never will."""


def estimate_tokens(text: str) -> int:
    """Rough token count of ``text`` (about four characters a token, at least one)."""
    return max(1, math.ceil(len(text) / 4))


def resolve_source(
    model: str, placement: DevicePlacement | None, fallback: str | None
) -> ModelSource:
    """The model's files, from the catalog the executor plans with.

    Raises:
        StageError: ``unknown-model`` / ``model-file`` naming the model and catalog.
    """
    path = (placement.models_path if placement else None) or os.environ.get(ENV_MODELS) or fallback
    if not path:
        raise StageError(
            "unknown-model",
            f"no model catalog to resolve {model!r}: set [fate] models (AIRFLOW__FATE__MODELS) "
            f"or {ENV_MODELS}",
        )
    try:
        catalog = load_models(path)
    except InputError as exc:
        raise StageError("model-file", f"model catalog: {exc}") from None
    try:
        return resolve_model(model, catalog, Path(path).resolve().parent)
    except StageError as exc:
        raise StageError(exc.reason, f"{exc.message} (catalog {path})") from None


def run_task(
    key: str,
    model: str,
    task: Task,
    kv_tokens: int,
    env: Mapping[str, str],
    catalog_fallback: str | None = None,
) -> StageResult:
    """Resolve the model, run ``task`` on the placement in ``env``; the measured result."""
    placement = DevicePlacement.from_env(env)
    source = resolve_source(model, placement, catalog_fallback)
    request = StageRequest(model=source, task=task, kv_tokens=kv_tokens)
    return run_stage(key, request, placement)


def failure_report(error: StageError, try_number: int) -> dict[str, Any]:
    """The ``fate_measured`` XCom of a stage that failed on its device: why, for the monitor.

    It has no timings, so the executor's counters and the replay skip it.
    """
    return {"failure": error.reason, "message": error.message, "try_number": try_number}


def measured(result: StageResult, env: Mapping[str, str], try_number: int) -> dict[str, Any]:
    """The JSON summary a stage pushes as its ``fate_measured`` XCom.

    ``try_number`` is there because an XCom belongs to the task instance, not the try:
    the executor keeps a report only for the try that wrote it.
    """
    placement = DevicePlacement.from_env(env)
    return {
        "try_number": try_number,
        "node": placement.node if placement else None,
        "devices": list(placement.device_ids) if placement else [],
        "model": result.model,
        "model_warm": result.model_warm,
        "prefix_warm": result.prefix_warm,
        "evicted": list(result.evicted),
        "load_s": result.timing.load_s,
        "prefill_s": result.timing.prefill_s,
        "decode_s": result.timing.decode_s,
        "total_s": result.timing.total_s,
        "input_tokens": result.tokens.input_tokens,
        "reused_prefix_tokens": result.tokens.reused_prefix_tokens,
        "output_tokens": result.tokens.output_tokens,
    }
