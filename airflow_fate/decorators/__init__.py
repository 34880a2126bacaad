"""TaskFlow stages: ``@task.fate_llm``, ``@task.fate_embed`` and ``@task.fate_rerank``.

The provider registers these factories as Airflow task decorators; importing them from
here works too. They are loaded lazily, so `decorators.returns` (no Airflow) can be
imported on its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_fate.decorators.stages import fate_embed_task, fate_llm_task, fate_rerank_task

__all__ = ["fate_embed_task", "fate_llm_task", "fate_rerank_task"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from airflow_fate.decorators import stages

        return getattr(stages, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
