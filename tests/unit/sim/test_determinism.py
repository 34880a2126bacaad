"""Same inputs and seed give byte-identical JSON; another seed gives another run."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_fate.cli import main
from tests.conftest import EXAMPLES


def run_cli(out: Path, policy: str, seed: int) -> bytes:
    args = [
        "simulate",
        "--cluster",
        str(EXAMPLES / "cluster.yaml"),
        "--models",
        str(EXAMPLES / "models.yaml"),
        "--workload",
        str(EXAMPLES / "workload.json"),
        "--policy",
        policy,
        "--seed",
        str(seed),
        "--json",
        str(out),
        "--no-timings",
    ]
    assert main(args) == 0
    return out.read_bytes()


@pytest.mark.parametrize("policy", ["random", "greedy-eft", "heft"])
def test_byte_identical_json(tmp_path: Path, policy: str) -> None:
    first = run_cli(tmp_path / "a.json", policy, 7)
    second = run_cli(tmp_path / "b.json", policy, 7)
    assert first == second
    assert run_cli(tmp_path / "c.json", policy, 8) != first, "the seed must matter (noise)"
