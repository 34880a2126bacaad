"""``airflow-fate replay`` on the database of a real ``airflow-fate demo`` run.

The session's one demo run (SQLite, the example DAGs triggered together, FateExecutor with
the fate policy, real small models; the `demo_run` fixture, shared with the demo test)
serves every test here. The replay must rebuild each run's
stages from the database, print a row for every registered policy, and replay the policy
that ran within 15% of the measured makespan (the cost model's error on the demo).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_fate.planner.registry import policy_names
from tests.integration.airflow.conftest import DemoRun

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "airflow_fate"]
MAX_MODEL_ERROR_PCT = 15.0


@dataclass(frozen=True)
class Demo:
    home: Path
    runs: list[dict[str, str]]

    def replay(self, *args: str, json_out: Path | None = None) -> subprocess.CompletedProcess[str]:
        inputs = self.home / "fate-inputs"
        extra = ["--json", str(json_out)] if json_out is not None else []
        return subprocess.run(
            [
                *CLI,
                "replay",
                "--home",
                str(self.home),
                "--cluster",
                str(inputs / "cluster.yaml"),
                "--models",
                str(inputs / "models.yaml"),
                *args,
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )


@pytest.fixture
def demo(demo_run: DemoRun) -> Demo:
    """The session's demo run (shared with the demo test), every run a success."""
    assert {r["state"] for r in demo_run.doc["dag_runs"]} == {"success"}
    return Demo(demo_run.home, demo_run.runs)


def _report(demo: Demo, tmp_path: Path, *args: str) -> tuple[str, dict[str, Any]]:
    out = tmp_path / "replay.json"
    done = demo.replay(*args, json_out=out)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done.stdout, json.loads(out.read_text())


def test_replay_of_every_demo_run_has_every_policy(demo: Demo, tmp_path: Path) -> None:
    dag_ids = sorted({r["dag_id"] for r in demo.runs})
    stdout, doc = _report(demo, tmp_path, "--dag-id", *dag_ids)
    assert [r["policy"] for r in doc["rows"]] == policy_names()
    assert all(r["figures"] is not None for r in doc["rows"]), [r["error"] for r in doc["rows"]]
    assert doc["ran"] == ["fate"] and [r["policy"] for r in doc["rows"] if r["ran"]] == ["fate"]
    assert {(r["dag_id"], r["run_id"]) for r in doc["runs"]} == {
        (r["dag_id"], r["run_id"]) for r in demo.runs
    }
    assert all(r["chosen"] for r in doc["runs"])
    measured = doc["measured"]
    stages = sum(r["stages"] for r in doc["runs"])
    assert measured["stages"] == stages > 0 and measured["loads"] >= 1
    assert doc["model_error"]["policy"] == "fate"
    for policy in policy_names():
        assert any(line.split()[:1] in ([policy], [policy + "*"]) for line in stdout.splitlines())
    assert "cost model error on this run: the replay of fate" in stdout
    assert {c["model"] for c in doc["calibration"]} >= {"smollm2-135m-instruct"}


@pytest.mark.campaign
def test_replay_model_error_is_small(demo: Demo, tmp_path: Path) -> None:
    """The replay of fate lands near the demo's measured makespan.

    In the campaign tier, not CI's: the figure compares a re-simulation of the policy
    with the run, so it holds only when the replay decides as the run did. When two cold
    loads of one model ran at once in the real run (each slowed by the other on two
    cores), the replay, calibrated with those slow loads, chose to queue instead, and the
    figure measured that decision (17.6% once in CI), not the cost model. A replay of the
    recorded placements would measure the cost model alone; it is not built yet.
    """
    dag_ids = sorted({r["dag_id"] for r in demo.runs})
    _, doc = _report(demo, tmp_path, "--dag-id", *dag_ids)
    error = doc["model_error"]
    print(f"replay of fate against the demo's measured makespan: {error}")  # the README figure
    assert abs(error["makespan_pct"]) <= MAX_MODEL_ERROR_PCT, error


def test_one_run_is_replayed_with_the_runs_that_shared_its_gpus(demo: Demo, tmp_path: Path) -> None:
    first = demo.runs[0]
    _, doc = _report(
        demo,
        tmp_path,
        "--dag-id",
        first["dag_id"],
        "--run-id",
        first["run_id"],
        "--policy",
        "round-robin,greedy-eft",
    )
    assert [r["policy"] for r in doc["rows"]] == ["round-robin", "greedy-eft", "fate"]
    chosen = [r for r in doc["runs"] if r["chosen"]]
    assert [(r["dag_id"], r["run_id"]) for r in chosen] == [(first["dag_id"], first["run_id"])]
    assert len(doc["runs"]) == len(demo.runs), "the other demo runs shared the GPUs"
    assert doc["measured"]["stages"] == chosen[0]["stages"]


def test_unknown_run_and_bad_options_are_one_line_errors(demo: Demo) -> None:
    dag_id = demo.runs[0]["dag_id"]
    done = demo.replay("--dag-id", dag_id, "--run-id", "no-such-run")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: --run-id: DAG {dag_id!r} has no run 'no-such-run'"
    )
    done = demo.replay("--dag-id", dag_id, "--policy", "nope")
    assert done.returncode == 2 and "error: --policy: unknown policy 'nope'" in done.stderr
