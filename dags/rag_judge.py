"""RAG with answer and judge (the benchmark's ``rag-judge`` template, small).

load_corpus (CPU tool) -> embed_docs -> rerank -> answer -> judge. The answer and the
judge share the LLM, so the judge runs warm on the answer's device when it is free; each
has its own system prompt whose KV a later run of the same DAG reuses.
"""

from __future__ import annotations

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG

from airflow_fate.operators import EmbeddingOperator, LLMStageOperator, RerankOperator

LLM = "smollm2-135m-instruct"
ENCODER = "all-minilm-l6-v2"
QUESTION = "Why do schedulers keep models resident on the same GPU?"
CORPUS = [
    "Loading model weights onto a GPU takes seconds to minutes.",
    "A warm model answers at once because its weights are already in memory.",
    "Prefix caching skips recomputing a shared system prompt.",
    "Rivers carry water from mountains to the sea.",
    "Batching requests raises GPU throughput.",
]


def load_corpus() -> list[str]:
    return CORPUS


with DAG(
    "fate_rag_judge",
    schedule=None,
    catchup=False,
    tags=["fate-demo"],
    default_args={"retries": 0},
    doc_md=__doc__,
) as dag:
    corpus = PythonOperator(task_id="load_corpus", python_callable=load_corpus)
    embed = EmbeddingOperator(
        task_id="embed_docs",
        model=ENCODER,
        texts="{{ ti.xcom_pull(task_ids='load_corpus') | join('\n') }}",
        input_tokens=80,
    )
    rerank = RerankOperator(
        task_id="rerank",
        model=ENCODER,
        query=QUESTION,
        documents="{{ ti.xcom_pull(task_ids='load_corpus') | join('\n') }}",
        top_k=2,
        input_tokens=100,
    )
    answer = LLMStageOperator(
        task_id="answer",
        model=LLM,
        system_prompt="You answer questions using only the given passages. Be brief.",
        system_prefix_id="rag-answer-v1",
        prompt=(
            f"Passages: {{{{ ti.xcom_pull(task_ids='rerank') | join(' ') }}}}\nQuestion: {QUESTION}"
        ),
        max_new_tokens=12,
    )
    judge = LLMStageOperator(
        task_id="judge",
        model=LLM,
        system_prompt="You grade answers. Reply with a score from 1 to 5 and one reason.",
        system_prefix_id="rag-judge-v1",
        prompt=f"Question: {QUESTION}\nAnswer: {{{{ ti.xcom_pull(task_ids='answer') }}}}",
        max_new_tokens=6,
    )
    corpus >> embed >> rerank >> answer >> judge
