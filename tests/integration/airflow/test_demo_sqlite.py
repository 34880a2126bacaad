"""``airflow-fate demo`` end to end on SQLite, with the real small models.

The README's main job: every example DAG run succeeds (read from the database), every
task has a ``fate_placement`` row, and stages follow their same-model parents to free
GPUs; the JSON result has the documented shape and no process survives the command. The
TaskFlow DAG's decorated stages run through FateExecutor like the classic operators'.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_fate.cli.demo import DEMO_DAGS
from airflow_fate.demo.environment import AirflowEnvironment, DagRunState
from tests.integration.airflow.conftest import (
    assert_every_task_placed,
    check_children_follow_parents,
    leftover_processes,
)

pytestmark = pytest.mark.slow

DEMO_TIMEOUT_S = 900
DEMO = [sys.executable, "-m", "airflow_fate", "demo"]
TASKFLOW_DAG = "fate_taskflow_summary_judge"
TASKFLOW_STAGES = {"pick_notes", "summarise", "judge", "embed_summary"}


def test_demo_runs_every_dag_with_placements(tmp_path: Path) -> None:
    home = tmp_path / "home"
    out = tmp_path / "demo.json"
    try:
        done = subprocess.run(
            [*DEMO, "--json", str(out), "--home", str(home), "--keep", "--timeout", "600"],
            capture_output=True,
            text=True,
            timeout=DEMO_TIMEOUT_S,
            check=False,
        )
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
        assert not leftover_processes(str(home.resolve()))
        doc = json.loads(out.read_text())
        assert {r["state"] for r in doc["dag_runs"]} == {"success"}
        assert sorted(r["dag_id"] for r in doc["dag_runs"]) == sorted(DEMO_DAGS)
        stage_keys = {"load_s", "prefill_s", "decode_s", "model_warm"}
        for p in doc["placements"]:
            assert {"dag_id", "task_id", "node", "gpus", "model", "measured"} <= set(p)
            if p["gpus"]:  # a stage: its measured breakdown is in the placement
                assert stage_keys <= set(p["measured"]), p
        assert "fate_rag_judge (policy fate)" in done.stdout
        assert f"wrote {out}" in done.stdout
        assert "loading " in done.stdout, "model loads are announced while they happen"

        env = AirflowEnvironment(home)  # the kept home: read its database
        runs = [DagRunState(r["dag_id"], r["run_id"], None) for r in doc["dag_runs"]]
        assert {s.state for s in env.run_states(runs)} == {"success"}
        placements = env.placements()
        assert_every_task_placed(env, runs, placements)
        assert {p.policy for p in placements if p.gpus} == {"fate"}
        assert all(p.measured for p in placements if p.gpus), "stages report measured times"
        assert env.engine.dialect.name == "sqlite"
        taskflow = [p for p in placements if p.key.dag_id == TASKFLOW_DAG and p.gpus]
        assert {p.key.task_id for p in taskflow} == TASKFLOW_STAGES, taskflow
        assert all(p.policy == "fate" and p.measured and p.end for p in taskflow)
        assert f"{TASKFLOW_DAG} (policy fate)" in done.stdout
        upstream = _upstream(home)
        assert check_children_follow_parents(placements, upstream) >= 1
        env.stop()
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _upstream(home: Path) -> dict[str, dict[str, list[str]]]:
    """The example DAGs' edges, read from the serialized DAGs the demo stored."""
    env = AirflowEnvironment(home)
    doc = env.upstream(list(DEMO_DAGS))
    return {k: dict(v) for k, v in doc.items()}
