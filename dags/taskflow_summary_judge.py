"""Summarise and judge, written with the TaskFlow stages of airflow-fate.

collect_notes (CPU) -> pick_notes (``@task.fate_rerank``) -> summarise
(``@task.fate_llm``) -> judge (``@task.fate_llm``) and embed_summary
(``@task.fate_embed``). Each function builds its stage's input from the upstream results
it is passed and returns it; the decorator's arguments are the classic operators', so
the planner sees the same metadata. summarise and judge share the LLM, so the judge runs
warm on the summary's device when it is free; the two encoder stages share a model too.
"""

from __future__ import annotations

from airflow.sdk import dag, task

LLM = "smollm2-135m-instruct"
ENCODER = "all-minilm-l6-v2"
QUESTION = "What makes a GPU scheduler fast for multi-stage LLM pipelines?"
NOTES = [
    "Stages that reuse a resident model skip loading its weights.",
    "Running a child stage where its parent's output already is avoids a copy.",
    "A shared system prompt's KV cache can be kept and reused by later stages.",
    "The office coffee machine was replaced last week.",
    "Large sharded stages need several free GPUs at the same time.",
]


@dag(
    dag_id="fate_taskflow_summary_judge",
    schedule=None,
    catchup=False,
    tags=["fate-demo"],
    default_args={"retries": 0},
    doc_md=__doc__,
)
def taskflow_summary_judge() -> None:
    @task
    def collect_notes() -> list[str]:
        return NOTES

    @task.fate_rerank(model=ENCODER, query=QUESTION, top_k=3, batch=len(NOTES), input_tokens=90)
    def pick_notes(notes: list[str]) -> list[str]:
        return notes

    @task.fate_llm(
        model=LLM,
        system_prompt="You answer from the notes given, in one sentence.",
        system_prefix_id="taskflow-summarise-v1",
        max_new_tokens=12,
    )
    def summarise(notes: list[str]) -> str:
        return f"Notes: {' '.join(notes)}\nQuestion: {QUESTION}"

    @task.fate_llm(
        model=LLM,
        system_prompt="You grade answers. Reply with a score from 1 to 5 and one reason.",
        system_prefix_id="taskflow-judge-v1",
        max_new_tokens=6,
    )
    def judge(answer: str) -> str:
        return f"Question: {QUESTION}\nAnswer: {answer}"

    @task.fate_embed(model=ENCODER, input_tokens=24)
    def embed_summary(summary: str) -> str:
        return summary

    summary = summarise(pick_notes(collect_notes()))
    judge(summary)
    embed_summary(summary)


taskflow_summary_judge()
