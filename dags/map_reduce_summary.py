"""Map-reduce summarisation (the benchmark's ``map-reduce-summary`` template, small).

split (CPU tool) -> summarise_0, summarise_1 (same model and system prompt: the second
reuses the first's prefix KV when they share a device) -> reduce -> embed_summary.
"""

from __future__ import annotations

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG

from airflow_fate.operators import EmbeddingOperator, LLMStageOperator

LLM = "smollm2-135m-instruct"
ENCODER = "all-minilm-l6-v2"
DOCUMENT = (
    "GPU clusters run many model stages. Each stage loads weights, reads its inputs, "
    "computes a prefill over its prompt and decodes new tokens. Schedulers that keep "
    "state in mind place stages where their model is warm and their inputs are local."
)
SUMMARISE = "You summarise text in one short sentence."


def split() -> list[str]:
    half = len(DOCUMENT) // 2
    return [DOCUMENT[:half], DOCUMENT[half:]]


with DAG(
    "fate_map_reduce_summary",
    schedule=None,
    catchup=False,
    tags=["fate-demo"],
    default_args={"retries": 0},
    doc_md=__doc__,
) as dag:
    chunks = PythonOperator(task_id="split", python_callable=split)
    maps = [
        LLMStageOperator(
            task_id=f"summarise_{i}",
            model=LLM,
            system_prompt=SUMMARISE,
            system_prefix_id="summarise-chunk-v1",
            prompt=f"Text: {{{{ ti.xcom_pull(task_ids='split')[{i}] }}}}",
            max_new_tokens=8,
        )
        for i in range(2)
    ]
    reduce = LLMStageOperator(
        task_id="reduce",
        model=LLM,
        system_prompt="You merge partial summaries into one sentence.",
        system_prefix_id="summarise-reduce-v1",
        prompt="Parts: {{ ti.xcom_pull(task_ids=['summarise_0', 'summarise_1']) | join(' ') }}",
        max_new_tokens=10,
    )
    embed = EmbeddingOperator(
        task_id="embed_summary",
        model=ENCODER,
        texts="{{ ti.xcom_pull(task_ids='reduce') }}",
        input_tokens=24,
    )
    chunks >> maps >> reduce >> embed
