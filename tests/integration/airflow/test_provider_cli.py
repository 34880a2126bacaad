"""airflow-fate as Airflow's own CLIs see it from a fresh AIRFLOW_HOME.

Real ``airflow`` commands (Airflow 3.3.2) in a home that holds nothing but what Airflow
writes itself on first use; no ``AIRFLOW__*`` variable reaches them, so every ``[fate]``
value shown is the provider's default.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import airflow_fate
from airflow_fate.executor.config_section import config_section
from airflow_fate.executor.settings import SECTION, FateSettings
from airflow_fate.provider_info import PACKAGE_NAME, TASK_DECORATORS

pytest.importorskip("airflow")

CLI_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a fresh home (Airflow creates ``airflow.cfg`` on first use)."""
    root = tmp_path_factory.mktemp("airflow-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["AIRFLOW_HOME"] = str(root)
    return env


def airflow(env: dict[str, str], *args: str) -> str:
    """Run ``airflow <args>``; its stdout (fails with stderr on a non-zero exit)."""
    done = subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"airflow {' '.join(args)}: {done.stderr[-3000:]}"
    return done.stdout


def test_providers_list_shows_airflow_fate(home: dict[str, str]) -> None:
    rows = json.loads(airflow(home, "providers", "list", "-o", "json"))
    ours = [row for row in rows if row["package_name"] == PACKAGE_NAME]
    assert len(ours) == 1, rows
    assert ours[0]["version"] == airflow_fate.__version__


def test_provider_declares_executor_plugin_operators_and_decorators(
    home: dict[str, str],
) -> None:
    [info] = json.loads(airflow(home, "providers", "get", PACKAGE_NAME, "--full", "-o", "json"))
    assert info["executors"] == ["airflow_fate.executor.FateExecutor"]
    assert info["plugins"] == [
        {"name": "fate", "plugin-class": "airflow_fate.ui.plugin.FatePlugin"}
    ]
    assert [m for o in info["operators"] for m in o["python-modules"]] == [
        "airflow_fate.operators.llm"
    ]
    assert {d["name"]: d["class-name"] for d in info["task-decorators"]} == TASK_DECORATORS


def test_executor_passes_airflows_import_check(home: dict[str, str]) -> None:
    """``providers executors`` lists only executors whose class imports."""
    rows = json.loads(airflow(home, "providers", "executors", "-o", "json"))
    assert {"executor_class_names": "airflow_fate.executor.FateExecutor"} in rows


def test_config_list_shows_every_option_with_description_and_default(
    home: dict[str, str],
) -> None:
    text = airflow(home, "config", "list", "--section", SECTION, "--defaults", "--show-values")
    lines = text.splitlines()
    assert lines[0] == f"[{SECTION}]"
    options: dict[str, dict[str, Any]] = config_section()[SECTION]["options"]
    assert list(options) == list(FateSettings.model_fields)
    for name, entry in options.items():
        assert f"# {entry['description']}" in lines, f"no description for {name}"
        assert f"# Example: {name} = {entry['example']}" in lines, name
        assert f"# Variable: AIRFLOW__{SECTION.upper()}__{name.upper()}" in lines, name
        default = entry["default"] if entry["default"] is not None else ""
        assert f"# {name} = {default}".rstrip() in [line.rstrip() for line in lines], name


@pytest.mark.parametrize("option", ["policy", "cpu_slots", "detach_on_end"])
def test_get_value_prints_the_settings_default(home: dict[str, str], option: str) -> None:
    shown = airflow(home, "config", "get-value", SECTION, option).strip()
    assert shown == str(FateSettings.model_fields[option].default)


def test_config_lint_is_clean(home: dict[str, str]) -> None:
    out = airflow(home, "config", "lint")
    assert "No issues found" in out, out
    assert "Found issues" not in out


def test_fresh_home_config_file_has_the_section(home: dict[str, str]) -> None:
    """Airflow writes the provider's section into the ``airflow.cfg`` it creates."""
    airflow(home, "config", "get-value", SECTION, "policy")
    cfg = (Path(home["AIRFLOW_HOME"]) / "airflow.cfg").read_text(encoding="utf-8")
    assert f"\n[{SECTION}]\n" in cfg


SETTINGS_PROBE = """
from airflow.configuration import conf
from airflow_fate.executor.settings import load_settings
settings = load_settings(lambda section, key: conf.get(section, key, fallback=None))
print(settings.model_dump_json())
"""


def test_executor_reads_airflows_defaults_as_its_own(home: dict[str, str]) -> None:
    """What the executor loads through Airflow's ``conf`` (the file Airflow wrote with the
    provider's defaults, plus two variables) is `FateSettings` with its defaults; the
    sensitive ``store_conn`` comes from a ``_CMD`` variable as Airflow's secrets do."""
    env = {
        **home,
        "AIRFLOW__FATE__CLUSTER": "/etc/fate/cluster.yaml",
        "AIRFLOW__FATE__MODELS": "/etc/fate/models.yaml",
        "AIRFLOW__FATE__STORE_CONN_CMD": "echo sqlite:////tmp/fate.db",
    }
    airflow(home, "config", "get-value", SECTION, "policy")  # the home's airflow.cfg exists
    done = subprocess.run(
        [sys.executable, "-c", SETTINGS_PROBE],
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = FateSettings.model_validate_json(done.stdout.strip().splitlines()[-1])
    expected = FateSettings(
        cluster=Path("/etc/fate/cluster.yaml"),
        models=Path("/etc/fate/models.yaml"),
        store_conn="sqlite:////tmp/fate.db",
    )
    assert loaded == expected


PROBE = """
import importlib, json
from airflow.providers_manager import ProvidersManager
decorators = ProvidersManager().taskflow_decorators
declared = {declared!r}
def resolve(path):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)
from airflow.sdk import task
print(json.dumps({{
    n: [decorators[n] is resolve(p), getattr(task, n) is resolve(p)] for n, p in declared.items()
}}))
"""


def test_task_decorators_reach_taskflow(home: dict[str, str]) -> None:
    if importlib.util.find_spec("airflow_fate.decorators") is None:
        pytest.skip("airflow_fate.decorators is not part of this checkout yet")
    probe = PROBE.format(declared=TASK_DECORATORS)
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env=home,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    # Both the providers manager and DAG authors' ``@task.<name>`` find each decorator.
    assert found == {name: [True, True] for name in TASK_DECORATORS}
