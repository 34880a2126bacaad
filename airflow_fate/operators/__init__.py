"""Operators for DAG authors (`LLMStageOperator`, `EmbeddingOperator`, `RerankOperator`).

They are loaded lazily, so the executor and tests can import the Airflow-free modules of
this package (`metadata`, `placement`, `stage`) without importing the Task SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_fate.operators.llm import EmbeddingOperator, LLMStageOperator, RerankOperator

__all__ = ["EmbeddingOperator", "LLMStageOperator", "RerankOperator"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from airflow_fate.operators import llm

        return getattr(llm, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
