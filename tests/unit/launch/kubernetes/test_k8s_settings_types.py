"""Launcher settings file and the message types."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_fate.errors import InputError
from airflow_fate.launch.kubernetes.settings import GpuMode, load_settings
from airflow_fate.launch.types import (
    GpuPlacement,
    LaunchRequest,
    TaskKey,
    airflow_task_command,
)


def test_settings_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "launcher.yaml"
    path.write_text(
        "executor_id: sched-a\non_finish: label\n"
        "pod: {gpu_mode: env-pin, namespace: gpu, shard_match_attribute: null}\n"
        "retry: {max_delay_s: 5}\n"
    )
    settings = load_settings(path)
    assert settings.executor_id == "sched-a"
    assert settings.on_finish == "label"
    assert settings.pod.gpu_mode is GpuMode.ENV_PIN
    assert settings.pod.shard_match_attribute is None
    assert settings.retry.max_delay_s == 5


def test_relative_pod_template_is_relative_to_the_settings_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "launcher.yaml"
    path.write_text("pod: {pod_template_file: pod-template.yaml}\n")
    assert load_settings(path).pod.pod_template_file == tmp_path / "conf" / "pod-template.yaml"
    path.write_text("pod: {pod_template_file: /etc/fate/template.yaml}\n")
    assert load_settings(path).pod.pod_template_file == Path("/etc/fate/template.yaml")


def test_empty_settings_file_means_defaults(tmp_path: Path) -> None:
    path = tmp_path / "launcher.yaml"
    path.write_text("")
    assert load_settings(path).pod.gpu_mode is GpuMode.DRA


@pytest.mark.parametrize(
    ("content", "where", "reason"),
    [
        pytest.param("pod: {gpu_mode: magic}\n", "pod.gpu_mode", "Input should be", id="mode"),
        pytest.param("on_finish: keep\n", "on_finish", "Input should be", id="on-finish"),
        pytest.param("surprise: 1\n", "surprise", "Extra inputs", id="unknown-key"),
        pytest.param("retry: {max_attempts: 0}\n", "retry.max_attempts", "greater", id="range"),
    ],
)
def test_bad_settings_name_the_field(tmp_path: Path, content: str, where: str, reason: str) -> None:
    path = tmp_path / "launcher.yaml"
    path.write_text(content)
    with pytest.raises(InputError, match=reason) as err:
        load_settings(path)
    assert err.value.path == where


def test_missing_settings_file() -> None:
    with pytest.raises(InputError, match="file not found"):
        load_settings("/nonexistent/launcher.yaml")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"dag_id": ""}, "dag_id must not be empty", id="empty-dag"),
        pytest.param({"try_number": -1}, "try_number", id="negative-try"),
        pytest.param({"map_index": -2}, "map_index", id="bad-map-index"),
    ],
)
def test_task_key_validation(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"dag_id": "d", "task_id": "t", "run_id": "r", "try_number": 1}
    fields.update(kwargs)
    with pytest.raises(ValueError, match=message):
        TaskKey(**fields)  # type: ignore[arg-type]


def test_task_key_str_shows_map_index_only_when_mapped() -> None:
    assert str(TaskKey("d", "t", "r", 1)) == "d.t run=r try=1"
    assert str(TaskKey("d", "t", "r", 1, 4)) == "d.t[4] run=r try=1"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"gpu_indices": ()}, "at least one GPU", id="no-gpus"),
        pytest.param({"gpu_indices": (1, 1)}, "repeat", id="repeat"),
        pytest.param({"gpu_uuids": ("GPU-a",)}, "must pair up", id="unpaired"),
        pytest.param({"node": ""}, "node must not be empty", id="no-node"),
    ],
)
def test_placement_validation(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"node": "n", "gpu_indices": (0, 1), "gpu_uuids": ()}
    fields.update(kwargs)
    with pytest.raises(ValueError, match=message):
        GpuPlacement(**fields)  # type: ignore[arg-type]


def test_request_needs_a_command_and_airflow_command_shape() -> None:
    placement = GpuPlacement("n", (0,))
    with pytest.raises(ValueError, match="empty command"):
        LaunchRequest(TaskKey("d", "t", "r", 1), (), placement)
    assert airflow_task_command("{}") == (
        "python",
        "-m",
        "airflow.sdk.execution_time.execute_workload",
        "--json-string",
        "{}",
    )
