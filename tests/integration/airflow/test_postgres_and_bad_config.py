"""PostgreSQL metadata database (a fresh one per run), and DAGs the planner must refuse.

One Airflow serves the RAG example DAG and a DAG with a task whose ``executor_config``
is malformed and one that names a model the catalog lacks: those tasks fail with a clear
message in their logs, while the RAG run succeeds with every task placed and its judge
following the answer to the answer's GPU.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import pytest

from airflow_fate.demo.environment import DAGS_FOLDER
from tests.integration.airflow.conftest import (
    RUN_TIMEOUT_S,
    airflow_environment,
    assert_every_task_placed,
    check_children_follow_parents,
    start,
)
from tests.pg import fresh_database

pytestmark = pytest.mark.slow

BAD_DAG = """
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG

from airflow_fate.operators import LLMStageOperator

with DAG("fate_bad_config", schedule=None, default_args={"retries": 0}) as dag:
    PythonOperator(
        task_id="bad_metadata",
        python_callable=lambda: 1,
        executor_config={"fate": {"model": "smollm2-135m-instruct", "input_tokens": "lots"}},
    )
    LLMStageOperator(task_id="unknown_model", model="gpt-9", prompt="hello")
    PythonOperator(task_id="fine_cpu", python_callable=lambda: "ok")
"""


def test_postgres_run_and_bad_stages_fail_clearly(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(DAGS_FOLDER / "rag_judge.py", dags / "rag_judge.py")
    (dags / "bad_config.py").write_text(BAD_DAG, encoding="utf-8")
    with (
        fresh_database() as url,
        airflow_environment(tmp_path / "home", db_url=url, dags_folder=dags) as env,
    ):
        start(env)
        runs = env.trigger(["fate_bad_config", "fate_rag_judge"])
        final = {r.dag_id: r.state for r in env.wait_runs(runs, RUN_TIMEOUT_S)}
        assert final == {"fate_bad_config": "failed", "fate_rag_judge": "success"}
        assert env.engine.dialect.name == "postgresql"

        states = {k[2]: v for k, v in env.task_states(runs).items()}
        assert states["bad_metadata"] == "failed"
        assert states["unknown_model"] == "failed"
        assert states["fine_cpu"] == "success"
        bad = _task_log(env.home, "bad_metadata")
        assert 'executor_config["fate"].input_tokens' in bad and "FATE cannot run task" in bad
        unknown = _task_log(env.home, "unknown_model")
        assert "unknown model 'gpt-9'" in unknown and "smollm2-135m-instruct" in unknown

        rag = [r for r in runs if r.dag_id == "fate_rag_judge"]
        env.wait_placements_closed(["fate_rag_judge"], 60.0)
        placements = env.placements(["fate_rag_judge"])
        assert_every_task_placed(env, rag, placements)
        upstream = env.upstream(["fate_rag_judge"])
        assert check_children_follow_parents(placements, upstream) >= 1
        assert env.is_running("scheduler")
        residency = _residency(env)
        assert residency, "the executor records what each GPU holds"


def _task_log(home: Path, task_id: str) -> str:
    """The messages of a task's log files (JSON lines, as Airflow writes and reads them)."""
    files = sorted((home / "logs").rglob(f"*task_id={task_id}*/*.log"))
    assert files, f"no log file for {task_id}"
    events = []
    for f in files:
        for line in f.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                events.append(str(json.loads(line).get("event", "")))
    return "\n".join(events)


def _residency(env) -> list[tuple[str, int, str, str]]:  # type: ignore[no-untyped-def]
    from airflow_fate.executor.store import FateStore

    return [(r.node, r.gpu, r.model, r.tier) for r in FateStore(env.engine).residency()]
