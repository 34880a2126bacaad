"""Four stages for one GPU that exercise every executor metric (the StatsD test's DAG).

draft and review are queued together, so one waits (queued stages) and the second finds
the LLM warm; revise shares draft's system prompt (prefix reuse); embed loads the
encoder, which evicts the LLM (the test's GPU holds one model at a time).
"""

from __future__ import annotations

from airflow.sdk import DAG

from airflow_fate.operators import EmbeddingOperator, LLMStageOperator

LLM = "smollm2-135m-instruct"
ENCODER = "all-minilm-l6-v2"
WRITER = "You are a technical writer. Answer in one short sentence."

with DAG(
    "fate_metrics_probe",
    schedule=None,
    catchup=False,
    default_args={"retries": 0},
    doc_md=__doc__,
) as dag:
    draft = LLMStageOperator(
        task_id="draft",
        model=LLM,
        system_prompt=WRITER,
        system_prefix_id="probe-writer-v1",
        prompt="Say why a warm GPU helps.",
        max_new_tokens=4,
    )
    review = LLMStageOperator(
        task_id="review",
        model=LLM,
        system_prompt="You review drafts. Give one short suggestion.",
        system_prefix_id="probe-reviewer-v1",
        prompt="Draft: warm GPUs skip model loads.",
        max_new_tokens=4,
    )
    revise = LLMStageOperator(
        task_id="revise",
        model=LLM,
        system_prompt=WRITER,
        system_prefix_id="probe-writer-v1",
        prompt="Improve: {{ ti.xcom_pull(task_ids='draft') }}",
        max_new_tokens=4,
    )
    embed = EmbeddingOperator(
        task_id="embed",
        model=ENCODER,
        texts="{{ ti.xcom_pull(task_ids='revise') }}",
        input_tokens=16,
    )
    [draft, review] >> revise >> embed
