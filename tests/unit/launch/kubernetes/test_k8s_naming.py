"""Pod names and labels: valid for Kubernetes, deterministic, collision-free."""

from __future__ import annotations

import re

import pytest

from airflow_fate.launch.kubernetes import naming
from airflow_fate.launch.types import TaskKey

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("manual__2026-01-01T00:00:00+00:00", id="airflow-run-id"),
        pytest.param("x" * 200, id="too-long"),
        pytest.param("-leading-and-trailing-", id="edge-dashes"),
        pytest.param("ünïcödé täsk", id="unicode"),
        pytest.param("", id="empty"),
        pytest.param("...", id="only-punctuation"),
    ],
)
def test_label_value_is_always_valid(value: str) -> None:
    assert naming.is_label_value(naming.label_value(value))


def test_valid_label_value_is_unchanged() -> None:
    assert naming.label_value("summarise_v2.final-3") == "summarise_v2.final-3"


def test_sanitised_values_do_not_collide() -> None:
    a = naming.label_value("run:1")
    b = naming.label_value("run/1")
    assert a != b


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(TaskKey("d", "t", "r", 1), id="short"),
        pytest.param(TaskKey("D" * 300, "T" * 300, "r" * 300, 9, 1234), id="long"),
        pytest.param(TaskKey("dag.with.dots", "task_with_underscores", "r", 1), id="punct"),
        pytest.param(TaskKey("___", "___", "r", 1), id="nothing-readable"),
    ],
)
def test_pod_name_is_a_dns_label(key: TaskKey) -> None:
    name = naming.pod_name(key)
    assert len(name) <= 63
    assert DNS_LABEL.match(name), name
    assert naming.pod_name(key) == name  # deterministic


def test_pod_name_differs_per_try_map_index_and_run() -> None:
    base = TaskKey("dag", "task", "run", 1, -1)
    names = {
        naming.pod_name(base),
        naming.pod_name(TaskKey("dag", "task", "run", 2, -1)),
        naming.pod_name(TaskKey("dag", "task", "run", 1, 0)),
        naming.pod_name(TaskKey("dag", "task", "run2", 1, -1)),
    }
    assert len(names) == 4


def test_annotations_round_trip_to_the_exact_key() -> None:
    key = TaskKey("dag", "task", "manual__2026-01-01T00:00:00+00:00", 3, 7)
    assert naming.key_from_annotations(naming.task_annotations(key)) == key


@pytest.mark.parametrize(
    "annotations",
    [
        pytest.param(None, id="none"),
        pytest.param({}, id="empty"),
        pytest.param({naming.DAG_ID: "d", naming.TASK_ID: "t"}, id="partial"),
        pytest.param(
            {
                naming.DAG_ID: "d",
                naming.TASK_ID: "t",
                naming.RUN_ID: "r",
                naming.TRY_NUMBER: "x",
                naming.MAP_INDEX: "-1",
            },
            id="bad-number",
        ),
    ],
)
def test_incomplete_annotations_give_no_key(annotations: dict[str, str] | None) -> None:
    assert naming.key_from_annotations(annotations) is None


def test_selectors() -> None:
    key = TaskKey("d", "t", "r:1", 1)
    assert naming.executor_selector("sched") == "airflow-fate/executor=sched,!airflow-fate/done"
    selector = naming.task_selector(key)
    assert f"airflow-fate/run-id={naming.label_value('r:1')}" in selector
    assert "airflow-fate/try-number=1" in selector


def test_a_pods_gpu_set_reads_back_from_its_annotations() -> None:
    from airflow_fate.launch.types import GpuPlacement

    placement = GpuPlacement("h100-a", (2, 3), ("GPU-a", "GPU-b"))
    pod = {"metadata": {"annotations": naming.placement_annotations(placement)}}
    assert naming.placement_from_annotations(pod) == placement


def test_unreadable_placement_annotations() -> None:
    not_a_number = {"metadata": {"annotations": {naming.GPU_INDICES_ANNOTATION: "1,x"}}}
    assert naming.placement_from_annotations(not_a_number) is None
    no_metadata = {"metadata": "not a mapping"}
    assert naming.placement_from_annotations(no_metadata) is None  # no node
