"""Pod phase -> task state."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_fate.launch.kubernetes.settings import DEFAULT_FATAL_WAITING_REASONS
from airflow_fate.launch.kubernetes.states import PodState, read_pod_status


def _pod(status: dict[str, Any], node: str | None = "n1") -> dict[str, Any]:
    return {"spec": {"nodeName": node} if node else {}, "status": status}


def _waiting(reason: str, message: str = "") -> dict[str, Any]:
    return {
        "phase": "Pending",
        "containerStatuses": [
            {"name": "base", "state": {"waiting": {"reason": reason, "message": message}}}
        ],
    }


@pytest.mark.parametrize(
    ("status", "state"),
    [
        pytest.param({"phase": "Pending"}, PodState.PENDING, id="pending"),
        pytest.param({}, PodState.PENDING, id="no-status-yet"),
        pytest.param({"phase": "Running"}, PodState.RUNNING, id="running"),
        pytest.param({"phase": "Succeeded"}, PodState.SUCCEEDED, id="succeeded"),
        pytest.param({"phase": "Failed"}, PodState.FAILED, id="failed"),
        pytest.param({"phase": "Unknown"}, PodState.UNKNOWN, id="unknown"),
        pytest.param(_waiting("ContainerCreating"), PodState.PENDING, id="creating"),
        pytest.param(_waiting("ErrImagePull"), PodState.FAILED, id="bad-image"),
        pytest.param(_waiting("ImagePullBackOff"), PodState.FAILED, id="image-backoff"),
        pytest.param(_waiting("InvalidImageName"), PodState.FAILED, id="invalid-image"),
        pytest.param(_waiting("CreateContainerConfigError"), PodState.FAILED, id="bad-config"),
    ],
)
def test_phase_mapping(status: dict[str, Any], state: PodState) -> None:
    assert read_pod_status(_pod(status), DEFAULT_FATAL_WAITING_REASONS).state is state


def test_fatal_pending_reason_names_container_reason_and_message() -> None:
    result = read_pod_status(
        _pod(_waiting("ErrImagePull", "manifest unknown")), DEFAULT_FATAL_WAITING_REASONS
    )
    assert result.reason == "Pending with container base: ErrImagePull: manifest unknown"


def test_fatal_reasons_are_configurable() -> None:
    status = _waiting("ErrImagePull")
    assert read_pod_status(_pod(status), ()).state is PodState.PENDING


def test_failed_reason_collects_pod_reason_and_exit_codes() -> None:
    status = {
        "phase": "Failed",
        "reason": "Evicted",
        "message": "low on memory",
        "containerStatuses": [
            {"name": "base", "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}},
            {"name": "sidecar", "state": {"terminated": {"exitCode": 0}}},
        ],
    }
    result = read_pod_status(_pod(status), DEFAULT_FATAL_WAITING_REASONS)
    assert result.reason == "Evicted; low on memory; container base: OOMKilled, exit code 137"


def test_failed_without_details_still_has_a_reason() -> None:
    assert read_pod_status(_pod({"phase": "Failed"}), ()).reason == "pod failed"


def test_unschedulable_is_flagged_with_scheduler_message() -> None:
    status = {
        "phase": "Pending",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/3 nodes are available: cannot allocate all claims",
            }
        ],
    }
    result = read_pod_status(_pod(status, node=None), ())
    assert result.state is PodState.PENDING
    assert result.unschedulable
    assert "cannot allocate all claims" in result.reason
    assert result.node is None


def test_init_container_failures_count() -> None:
    status = {
        "phase": "Pending",
        "initContainerStatuses": [
            {"name": "fetch", "state": {"waiting": {"reason": "ErrImagePull"}}}
        ],
    }
    result = read_pod_status(_pod(status), DEFAULT_FATAL_WAITING_REASONS)
    assert result.state is PodState.FAILED
    assert "container fetch" in result.reason
