"""Same inputs and seed give byte-identical JSON; another seed gives another run."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_fate.cli import main
from tests.conftest import EXAMPLES


def _args(out: Path, policy: str, seed: int) -> list[str]:
    return [
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


def run_cli(out: Path, policy: str, seed: int) -> bytes:
    assert main(_args(out, policy, seed)) == 0
    return out.read_bytes()


@pytest.mark.parametrize("policy", ["random", "greedy-eft", "heft"])
def test_byte_identical_json(tmp_path: Path, policy: str) -> None:
    first = run_cli(tmp_path / "a.json", policy, 7)
    second = run_cli(tmp_path / "b.json", policy, 7)
    assert first == second
    assert run_cli(tmp_path / "c.json", policy, 8) != first, "the seed must matter (noise)"


def test_pod_per_stage_predicts_a_load_for_every_stage(tmp_path: Path) -> None:
    """``--pod-per-stage``: nothing stays on a GPU, so every stage of a same-model chain
    loads its model; without it the chain reuses the warm copy."""
    import json

    chain = [
        {
            "id": f"s{i}",
            "model": "llama-3.1-8b-instruct",
            "input_tokens": 800,
            "output_tokens": 50,
            "output_mb": 0.01,
            "parents": [f"s{i - 1}"] if i else [],
        }
        for i in range(4)
    ]
    workload = tmp_path / "chain.json"
    doc = {"version": 1, "workflows": [{"id": "w", "arrival_s": 0.0, "stages": chain}]}
    workload.write_text(json.dumps(doc))
    results = {}
    for flags in ([], ["--pod-per-stage"]):
        out = tmp_path / f"out{len(flags)}.json"
        args = _args(out, "greedy-eft", 3)
        args[args.index("--workload") + 1] = str(workload)
        assert main([*args, *flags]) == 0
        results[bool(flags)] = json.loads(out.read_text())
    pod_loads = [p["breakdown"]["load"] for p in results[True]["placements"]]
    warm_loads = [p["breakdown"]["load"] for p in results[False]["placements"]]
    assert len(pod_loads) == 4 and all(load > 0 for load in pod_loads)
    assert warm_loads.count(0.0) == 3, "the chain reuses the first stage's load"
    assert results[True]["makespan_s"] > results[False]["makespan_s"]
