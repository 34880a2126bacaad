"""The provider info: valid for Airflow 3.3's schema, registered, and naming real things."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import inspect
import json
import pkgutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import airflow_fate
import airflow_fate.operators
from airflow_fate.executor.config_section import config_section
from airflow_fate.provider_info import (
    OPERATOR_MODULES,
    PACKAGE_NAME,
    TASK_DECORATORS,
    get_cli_commands,
    get_provider_info,
)

# The option keys Airflow's config writer and providers manager read (config.yml schema).
OPTION_KEYS = {"description", "version_added", "type", "example", "default", "sensitive"}


def resolve(dotted: str) -> Any:
    """``package.module.name`` -> the object, as Airflow's ``import_string`` does."""
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def airflow_schema() -> dict[str, Any]:
    """Airflow's own ``provider_info.schema.json``, read from the installed package
    without importing Airflow."""
    spec = importlib.util.find_spec("airflow")
    assert spec is not None and spec.submodule_search_locations, "apache-airflow not installed"
    path = Path(next(iter(spec.submodule_search_locations))) / "provider_info.schema.json"
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def test_valid_against_airflows_provider_info_schema() -> None:
    schema = airflow_schema()
    jsonschema.validators.validator_for(schema)(schema).validate(get_provider_info())


def test_schema_check_is_not_vacuous() -> None:
    """The same validator rejects a provider info with a malformed option."""
    schema = airflow_schema()
    info = get_provider_info()
    info["config"]["fate"]["options"]["policy"]["type"] = "list"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validators.validator_for(schema)(schema).validate(info)


def test_options_use_only_keys_airflow_reads() -> None:
    """Airflow's schema misspells ``additionalProperties`` for options, so check here."""
    for name, entry in get_provider_info()["config"]["fate"]["options"].items():
        assert set(entry) <= OPTION_KEYS, name


def test_config_is_the_settings_section() -> None:
    assert get_provider_info()["config"] == config_section()


def test_registered_under_the_distribution_name() -> None:
    dist = importlib.metadata.distribution(PACKAGE_NAME)
    assert get_provider_info()["package-name"] == dist.metadata["Name"] == PACKAGE_NAME
    assert get_provider_info()["versions"] == [dist.version] == [airflow_fate.__version__]
    # Registered by installing the package (after editing setup.cfg: pip install -e .).
    points = [ep for ep in dist.entry_points if ep.group == "apache_airflow_provider"]
    assert [ep.load() for ep in points] == [get_provider_info]
    plugins = [ep.value for ep in dist.entry_points if ep.group == "airflow.plugins"]
    assert plugins == ["airflow_fate.ui.plugin:FatePlugin"]


def test_importing_it_imports_no_airflow() -> None:
    probe = (
        "import sys, airflow_fate.provider_info as p; p.get_provider_info(); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'airflow', 'sqlalchemy', 'ortools', 'torch', 'kubernetes'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


def test_executor_and_plugin_resolve() -> None:
    pytest.importorskip("airflow")
    from airflow.plugins_manager import AirflowPlugin

    from airflow_fate.executor.fate_executor import FateExecutor

    info = get_provider_info()
    assert [resolve(path) for path in info["executors"]] == [FateExecutor]
    plugin = resolve(info["plugins"][0]["plugin-class"])
    assert issubclass(plugin, AirflowPlugin) and plugin.name == info["plugins"][0]["name"]
    assert [resolve(path) for path in info["cli"]] == [get_cli_commands]
    assert get_cli_commands() == []


def test_operator_modules_are_exactly_those_defining_operators() -> None:
    pytest.importorskip("airflow")
    from airflow.sdk import BaseOperator

    defining = set()
    for module_info in pkgutil.iter_modules(airflow_fate.operators.__path__):
        module = importlib.import_module(f"airflow_fate.operators.{module_info.name}")
        if any(
            issubclass(obj, BaseOperator) and obj.__module__ == module.__name__
            for _, obj in inspect.getmembers(module, inspect.isclass)
        ):
            defining.add(module.__name__)
    assert defining == set(OPERATOR_MODULES)
    listed = get_provider_info()["operators"]
    assert [m for entry in listed for m in entry["python-modules"]] == list(OPERATOR_MODULES)


def test_task_decorators_declared() -> None:
    declared = {d["name"]: d["class-name"] for d in get_provider_info()["task-decorators"]}
    assert declared == {
        "fate_llm": "airflow_fate.decorators.fate_llm_task",
        "fate_embed": "airflow_fate.decorators.fate_embed_task",
        "fate_rerank": "airflow_fate.decorators.fate_rerank_task",
    }
    assert declared == TASK_DECORATORS


def test_task_decorators_resolve() -> None:
    if importlib.util.find_spec("airflow_fate.decorators") is None:
        pytest.skip("airflow_fate.decorators is not part of this checkout yet")
    pytest.importorskip("airflow")
    for name, path in TASK_DECORATORS.items():
        assert callable(resolve(path)), name
