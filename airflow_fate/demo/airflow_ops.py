"""Airflow operations the demo runs in a child process (so the demo never imports Airflow).

``python -m airflow_fate.demo.airflow_ops trigger DAG [DAG...]`` triggers one run of each
DAG and prints ``[{"dag_id": ..., "run_id": ...}]`` as JSON on the last line;
``upstream DAG [DAG...]`` prints ``{dag_id: {task_id: [upstream task ids]}}``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime


def trigger(dag_ids: Sequence[str]) -> list[dict[str, str]]:
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.utils.types import DagRunTriggeredByType

    out: list[dict[str, str]] = []
    for dag_id in dag_ids:
        now = datetime.now(UTC)
        run_id = f"fate_demo__{now.strftime('%Y%m%dT%H%M%S%f')}"
        trigger_dag(
            dag_id,
            run_id=run_id,
            logical_date=None,
            triggered_by=DagRunTriggeredByType.CLI,
            triggering_user_name="airflow-fate",
        )
        out.append({"dag_id": dag_id, "run_id": run_id})
    return out


def upstream(dag_ids: Sequence[str]) -> dict[str, dict[str, list[str]]]:
    """Each DAG's tasks and their direct upstream task ids, from the serialized DAGs."""
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session

    out: dict[str, dict[str, list[str]]] = {}
    with create_session() as session:
        for dag_id in dag_ids:
            dag = SerializedDagModel.get_dag(dag_id, session=session)
            if dag is not None:
                out[dag_id] = {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}
    return out


COMMANDS = {"trigger": trigger, "upstream": upstream}


def main(argv: Sequence[str]) -> int:
    if len(argv) < 2 or argv[0] not in COMMANDS:
        print("usage: airflow_ops {trigger,upstream} DAG [DAG...]", file=sys.stderr)
        return 2
    print(json.dumps(COMMANDS[argv[0]](argv[1:])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
