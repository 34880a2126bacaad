"""Multi-agent review (the benchmark's ``multi-agent-debate`` / ``metagpt-coding`` shape).

draft -> review_style, review_facts (two reviewers, one model, different personas) ->
revise. Every stage uses the same LLM, so where the reviewers run decides how often it is
loaded; draft and revise share the writer's system prompt, whose KV revise can reuse.
"""

from __future__ import annotations

from airflow.sdk import DAG

from airflow_fate.operators import LLMStageOperator

LLM = "smollm2-135m-instruct"
TOPIC = "why warm GPUs matter for multi-stage LLM pipelines"
WRITER = "You are a technical writer. Answer in one sentence."

with DAG(
    "fate_multi_agent_review",
    schedule=None,
    catchup=False,
    tags=["fate-demo"],
    default_args={"retries": 0},
    doc_md=__doc__,
) as dag:
    draft = LLMStageOperator(
        task_id="draft",
        model=LLM,
        system_prompt=WRITER,
        system_prefix_id="agent-writer-v1",
        prompt=f"Write about {TOPIC}.",
        max_new_tokens=12,
    )
    reviews = [
        LLMStageOperator(
            task_id=f"review_{aspect}",
            model=LLM,
            system_prompt=f"You review drafts for {aspect}. Give one short suggestion.",
            system_prefix_id=f"agent-reviewer-{aspect}-v1",
            prompt="Draft: {{ ti.xcom_pull(task_ids='draft') }}",
            max_new_tokens=8,
        )
        for aspect in ("style", "facts")
    ]
    revise = LLMStageOperator(
        task_id="revise",
        model=LLM,
        system_prompt=WRITER,
        system_prefix_id="agent-writer-v1",
        prompt=(
            "Draft: {{ ti.xcom_pull(task_ids='draft') }}\n"
            "Suggestions: {{ ti.xcom_pull(task_ids=['review_style', 'review_facts']) "
            "| join(' ') }}"
        ),
        max_new_tokens=12,
    )
    draft >> reviews >> revise
