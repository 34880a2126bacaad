"""What Airflow's providers manager learns about airflow-fate (the
``apache_airflow_provider`` entry point).

Airflow calls `get_provider_info` in every process that discovers providers and
validates the result against its ``provider_info.schema.json``; ``airflow providers
list``, ``airflow config list`` and ``@task.<name>`` read it. So this module imports no
Airflow and nothing heavy: names of classes and modules only, and the ``[fate]`` options
derived from `FateSettings` (`executor.config_section`), never a second copy of them.
"""

from __future__ import annotations

from typing import Any

from airflow_fate import __version__
from airflow_fate.executor.config_section import config_section

PACKAGE_NAME = "airflow-fate"
"""The distribution name; Airflow checks it against the installed package's metadata."""

INTEGRATION = "FATE GPU scheduling"

TASK_DECORATORS = {
    "fate_llm": "airflow_fate.decorators.fate_llm_task",
    "fate_embed": "airflow_fate.decorators.fate_embed_task",
    "fate_rerank": "airflow_fate.decorators.fate_rerank_task",
}
"""``@task.<name>`` -> the decorator function."""

OPERATOR_MODULES = ("airflow_fate.operators.llm",)
"""Modules that define operators (the rest of ``operators`` is their Airflow-free core)."""


def get_provider_info() -> dict[str, Any]:
    """The provider info dictionary (Airflow's runtime ``provider_info`` schema)."""
    return {
        "package-name": PACKAGE_NAME,
        "name": "FATE",
        "description": (
            "Future-state-aware GPU scheduling of multi-stage LLM pipelines: an executor "
            "that places pipeline stages on GPUs, operators and TaskFlow decorators for "
            "stages, and a UI plugin for placements."
        ),
        "versions": [__version__],
        "integrations": [{"integration-name": INTEGRATION, "tags": ["ai", "gpu"]}],
        "operators": [{"integration-name": INTEGRATION, "python-modules": list(OPERATOR_MODULES)}],
        "executors": ["airflow_fate.executor.FateExecutor"],
        "plugins": [{"name": "fate", "plugin-class": "airflow_fate.ui.plugin.FatePlugin"}],
        "cli": ["airflow_fate.provider_info.get_cli_commands"],
        "task-decorators": [
            {"name": name, "class-name": path} for name, path in TASK_DECORATORS.items()
        ],
        "config": config_section(),
    }


def get_cli_commands() -> list[Any]:
    """The ``airflow`` subcommands airflow-fate adds: none (its commands are the
    ``airflow-fate`` program's).

    Declared all the same: for a provider executor without a ``cli`` entry Airflow
    imports the executor class in every ``airflow`` command to ask it for commands, and
    warns each time.
    """
    return []
