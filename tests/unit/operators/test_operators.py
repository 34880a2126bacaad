"""The operators fill ``executor_config["fate"]`` at parse time from their arguments."""

from __future__ import annotations

import pytest

from airflow_fate.operators.metadata import read_metadata

sdk = pytest.importorskip("airflow.sdk")


def _dag():  # type: ignore[no-untyped-def]
    return sdk.DAG("t", schedule=None)


def test_llm_stage_metadata_from_arguments() -> None:
    from airflow_fate.operators import LLMStageOperator

    with _dag():
        op = LLMStageOperator(
            task_id="answer",
            model="smollm2-135m-instruct",
            prompts=["one {{ ti.xcom_pull('a') }}", "two"],
            system_prompt="You are terse and exact." * 4,
            system_prefix_id="sys-v1",
            max_new_tokens=10,
            max_shards=2,
            executor_config={"other": {"x": 1}},
        )
    m = read_metadata(op.executor_config)
    assert m is not None
    assert (m.model, m.output_tokens, m.max_shards) == ("smollm2-135m-instruct", 20, 2)
    assert m.prefix is not None and m.prefix.id == "sys-v1" and m.prefix.tokens == 24
    assert m.input_tokens >= 2 * m.prefix.tokens
    assert op.executor_config["other"] == {"x": 1}
    assert set(op.template_fields) == {"prompt", "prompts", "system_prompt"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({}, "exactly one of prompt= or prompts=", id="no-prompt"),
        pytest.param({"prompt": "a", "prompts": ["b"]}, "exactly one", id="both"),
        pytest.param({"prompt": "a", "system_prefix_id": "p"}, "needs system_prompt", id="prefix"),
    ],
)
def test_llm_stage_argument_errors(kwargs: dict[str, object], message: str) -> None:
    from airflow_fate.operators import LLMStageOperator

    with _dag(), pytest.raises(ValueError, match=message):
        LLMStageOperator(task_id="x", model="m", **kwargs)


def test_encoder_operators_describe_encoder_stages() -> None:
    from airflow_fate.operators import EmbeddingOperator, RerankOperator

    with _dag():
        embed = EmbeddingOperator(task_id="e", model="all-minilm-l6-v2", texts=["a", "b"])
        rerank = RerankOperator(task_id="r", model="all-minilm-l6-v2", query="q", documents="x")
    for op in (embed, rerank):
        m = read_metadata(op.executor_config)
        assert m is not None and m.output_tokens == 0 and m.input_tokens > 0
