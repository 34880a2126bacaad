"""The Airflow executor: ``[core] executor = airflow_fate.executor.FateExecutor``.

The only package that imports Airflow's scheduler side. `FateExecutor` is loaded lazily,
so importing this package (or its Airflow-free modules: `frontier`, `layout`, `store`,
`settings`) does not import Airflow. Launchers live in `airflow_fate.launch`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_fate.executor.fate_executor import FateExecutor

__all__ = ["FateExecutor"]


def __getattr__(name: str) -> Any:
    if name == "FateExecutor":
        from airflow_fate.executor.fate_executor import FateExecutor

        return FateExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
