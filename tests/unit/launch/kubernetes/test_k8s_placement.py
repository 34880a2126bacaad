"""The device-plugin placement marker."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from airflow_fate.launch.kubernetes.placement import (
    format_marker,
    parse_marker,
    reporting_command,
)


def test_marker_round_trip() -> None:
    uuids = ("GPU-a", "GPU-b")
    assert parse_marker(format_marker(uuids)) == uuids


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        pytest.param("", None, id="nothing-yet"),
        pytest.param("loading model\n", None, id="no-marker"),
        pytest.param(
            "x\nFATE-PLACEMENT GPU-1,GPU-2\nFATE-PLACEMENT GPU-9\n",
            ("GPU-1", "GPU-2"),
            id="first-wins",
        ),
        pytest.param("FATE-PLACEMENT \n", (), id="empty"),
        pytest.param("FATE-PLACEMENT all\n", (), id="all-is-unknown"),
        pytest.param("FATE-PLACEMENTS GPU-1\n", None, id="prefix-only"),
    ],
)
def test_parse_marker(log: str, expected: tuple[str, ...] | None) -> None:
    assert parse_marker(log) == expected


def test_reporting_command_echoes_visible_devices_then_execs_the_task() -> None:
    argv = reporting_command((sys.executable, "-c", "print('task ran')"))
    out = subprocess.run(
        list(argv),
        env={**os.environ, "NVIDIA_VISIBLE_DEVICES": "GPU-x,GPU-y"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert parse_marker(out) == ("GPU-x", "GPU-y")
    assert out.splitlines()[1] == "task ran"
