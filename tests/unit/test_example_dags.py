"""Every file in the top-level ``dags/`` parses in Airflow, and the demo triggers them all."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_fate.cli.demo import DEMO_DAGS
from airflow_fate.operators.metadata import read_metadata

pytest.importorskip("airflow.sdk")

from airflow.dag_processing.dagbag import DagBag

from airflow_fate.decorators.stages import StageFunctionOperator
from airflow_fate.demo.environment import DAGS_FOLDER

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dag_bag() -> DagBag:
    return DagBag(dag_folder=DAGS_FOLDER)


def test_the_example_dags_are_the_top_level_dags_folder() -> None:
    assert DAGS_FOLDER == REPOSITORY / "dags"
    assert not (REPOSITORY / "airflow_fate" / "dags").exists(), "one copy of the DAGs"


def test_every_dag_file_parses(dag_bag: DagBag) -> None:
    assert not dag_bag.import_errors, dag_bag.import_errors
    files = sorted(DAGS_FOLDER.glob("*.py"))
    assert files
    parsed = {Path(dag.fileloc).name for dag in dag_bag.dags.values()}
    assert parsed == {f.name for f in files}, "each file defines a DAG"


def test_the_demo_triggers_every_example_dag(dag_bag: DagBag) -> None:
    assert set(dag_bag.dag_ids) == set(DEMO_DAGS)


def test_every_dag_has_stages_with_valid_metadata(dag_bag: DagBag) -> None:
    for dag in dag_bag.dags.values():
        stages = [t for t in dag.tasks if read_metadata(t.executor_config) is not None]
        assert stages, f"{dag.dag_id} has no FATE stage"


def test_the_taskflow_dag_is_built_from_the_decorators(dag_bag: DagBag) -> None:
    dag = dag_bag.dags["fate_taskflow_summary_judge"]
    stages = {t.task_id: t for t in dag.tasks if read_metadata(t.executor_config) is not None}
    assert set(stages) == {"pick_notes", "summarise", "judge", "embed_summary"}
    assert all(isinstance(t, StageFunctionOperator) for t in stages.values())
    names = {t.custom_operator_name for t in stages.values()}
    assert names == {"@task.fate_rerank", "@task.fate_llm", "@task.fate_embed"}
