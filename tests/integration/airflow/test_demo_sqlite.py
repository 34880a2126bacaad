"""``airflow-fate demo`` end to end on SQLite, with the real small models.

The README's main job: every example DAG run succeeds (read from the database), every
task has a ``fate_placement`` row, and stages follow their same-model parents to free
GPUs; the JSON result has the documented shape and no process survives the command (the
session's one demo run, `demo_run`, which the replay test reads too). The
TaskFlow DAG's decorated stages run through FateExecutor like the classic operators'.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_fate.cli.demo import DEMO_DAGS
from airflow_fate.demo.environment import AirflowEnvironment, DagRunState
from tests.integration.airflow.conftest import (
    DemoRun,
    assert_every_task_placed,
    check_children_follow_parents,
)

pytestmark = pytest.mark.slow

TASKFLOW_DAG = "fate_taskflow_summary_judge"
TASKFLOW_STAGES = {"pick_notes", "summarise", "judge", "embed_summary"}


def test_demo_runs_every_dag_with_placements(demo_run: DemoRun) -> None:
    doc, stdout, home = demo_run.doc, demo_run.stdout, demo_run.home
    assert {r["state"] for r in doc["dag_runs"]} == {"success"}
    assert sorted(r["dag_id"] for r in doc["dag_runs"]) == sorted(DEMO_DAGS)
    stage_keys = {"load_s", "prefill_s", "decode_s", "model_warm"}
    for p in doc["placements"]:
        assert {"dag_id", "task_id", "node", "gpus", "model", "measured"} <= set(p)
        if p["gpus"]:  # a stage: its measured breakdown is in the placement
            assert stage_keys <= set(p["measured"]), p
    assert "fate_rag_judge (policy fate)" in stdout
    assert f"wrote {demo_run.json_path}" in stdout
    assert "loading " in stdout, "model loads are announced while they happen"

    env = AirflowEnvironment(home)  # the kept home: read its database
    try:
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
        assert f"{TASKFLOW_DAG} (policy fate)" in stdout
        assert check_children_follow_parents(placements, _upstream(home)) >= 1
    finally:
        env.stop()


def _upstream(home: Path) -> dict[str, dict[str, list[str]]]:
    """The example DAGs' edges, read from the serialized DAGs the demo stored."""
    env = AirflowEnvironment(home)
    doc = env.upstream(list(DEMO_DAGS))
    return {k: dict(v) for k, v in doc.items()}
