"""The TaskFlow stages: the classic operators' metadata for the same arguments, argument
errors that name the task, and what the function returns run on the placed device."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from airflow_fate.operators.metadata import StageMetadata, read_metadata
from airflow_fate.operators.stage import MEASURED_XCOM_KEY, estimate_tokens
from tests.unit.decorators.conftest import MODEL, EchoWorker, RecordingTaskInstance

sdk = pytest.importorskip("airflow.sdk")

from airflow.sdk.exceptions import AirflowFailException  # noqa: E402

from airflow_fate.decorators import (  # noqa: E402
    fate_embed_task,
    fate_llm_task,
    fate_rerank_task,
)
from airflow_fate.operators import (  # noqa: E402
    EmbeddingOperator,
    LLMStageOperator,
    RerankOperator,
)

SYSTEM = "You answer in one short sentence, citing the notes."


def _dag() -> Any:
    return sdk.DAG("t", schedule=None)


def _operator(decorator: Any, function: Callable[..., Any], *args: Any) -> Any:
    """The operator a decorated function becomes when called in a DAG."""
    with _dag():
        return decorator(function)(*args).operator


def _metadata(op: Any) -> StageMetadata:
    metadata = read_metadata(op.executor_config)
    assert metadata is not None
    return metadata


def _text(notes: str) -> str:
    return notes


def _texts(notes: list[str]) -> list[str]:
    return notes


@pytest.mark.parametrize(
    ("kwargs", "batch"),
    [
        pytest.param({"max_new_tokens": 7}, 1, id="plain"),
        pytest.param(
            {"system_prompt": SYSTEM, "system_prefix_id": "sys-v1", "max_new_tokens": 9},
            1,
            id="prefix",
        ),
        pytest.param(
            {"system_prompt": SYSTEM, "system_prefix_id": "s", "min_shards": 1, "max_shards": 2},
            3,
            id="batch-shards",
        ),
        pytest.param({"input_tokens": 500, "output_mb": 0.5}, 2, id="explicit-sizes"),
    ],
)
def test_llm_metadata_is_the_classic_operators(kwargs: dict[str, Any], batch: int) -> None:
    """Same arguments, same metadata; by default the decorated stage counts only
    ``context_tokens`` per prompt, the classic one adds its template's own tokens."""
    prompts = [f"Notes {i}: {{{{ ti.xcom_pull('n') }}}}" for i in range(batch)]
    with _dag():
        classic = LLMStageOperator(task_id="c", model=MODEL, prompts=prompts, **kwargs)
    decorated = _operator(fate_llm_task(model=MODEL, batch=batch, **kwargs), _texts, ["x"])
    template_tokens = sum(estimate_tokens(p) for p in prompts)
    expected = _metadata(classic)
    if "input_tokens" not in kwargs:
        expected = expected.model_copy(
            update={"input_tokens": expected.input_tokens - template_tokens}
        )
    assert _metadata(decorated) == expected
    assert decorated.executor_config == {"fate": expected.as_executor_config()["fate"]}


def test_encoder_metadata_is_the_classic_operators() -> None:
    with _dag():
        embed = EmbeddingOperator(task_id="e", model=MODEL, texts=["a", "b"], input_tokens=40)
        rerank = RerankOperator(
            task_id="r", model=MODEL, query="why?", documents=["a", "b", "c"], top_k=2
        )
    decorated_embed = _operator(fate_embed_task(model=MODEL, batch=2, input_tokens=40), _texts, [])
    decorated_rerank = _operator(
        fate_rerank_task(model=MODEL, query="why?", top_k=2, batch=3), _texts, []
    )
    assert _metadata(decorated_embed) == _metadata(embed)
    # The classic estimate holds each document template's own tokens (one each here).
    classic = _metadata(rerank)
    assert _metadata(decorated_rerank) == classic.model_copy(
        update={"input_tokens": classic.input_tokens - 3}
    )


def test_a_run_time_query_is_estimated_as_upstream_text() -> None:
    op = _operator(fate_rerank_task(model=MODEL, batch=2, context_tokens=10), _texts, [])
    assert _metadata(op).input_tokens == 10 + 2 * 10


def test_the_provider_registers_the_decorators() -> None:
    assert sdk.task.fate_llm is fate_llm_task
    assert sdk.task.fate_embed is fate_embed_task
    assert sdk.task.fate_rerank is fate_rerank_task


@pytest.mark.parametrize(
    ("decorator", "kwargs", "error", "message"),
    [
        pytest.param(fate_llm_task, {}, TypeError, "missing keyword argument 'model'", id="model"),
        pytest.param(
            fate_llm_task,
            {"model": MODEL, "system_prefix_id": "p"},
            ValueError,
            "system_prefix_id= needs system_prompt=",
            id="prefix-without-system",
        ),
        pytest.param(
            fate_llm_task,
            {"model": MODEL, "max_new_tokens": 0},
            ValueError,
            "max_new_tokens= must be >= 1, got 0",
            id="max-new-tokens",
        ),
        pytest.param(
            fate_llm_task,
            {"model": MODEL, "min_shards": 3, "max_shards": 2},
            ValueError,
            r"min_shards \(3\) is greater than max_shards \(2\)",
            id="shards",
        ),
        pytest.param(
            fate_llm_task,
            {"model": MODEL, "max_shards": 0},
            ValueError,
            "max_shards: Input should be greater than or equal to 1",
            id="shards-field",
        ),
        pytest.param(
            fate_llm_task,
            {"model": MODEL, "max_tokens": 5},
            TypeError,
            "Invalid arguments",
            id="unknown-argument",
        ),
        pytest.param(
            fate_embed_task,
            {"model": MODEL, "batch": 0},
            ValueError,
            "batch= must be >= 1, got 0",
            id="batch",
        ),
        pytest.param(
            fate_rerank_task,
            {"model": MODEL, "top_k": 0},
            ValueError,
            "top_k= must be >= 1, got 0",
            id="top-k",
        ),
    ],
)
def test_bad_arguments_name_the_decorator_and_task(
    decorator: Any, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    name = decorator.__name__.removesuffix("_task")
    with pytest.raises(error, match=rf"^@task\.{name} task 'my_stage': .*{message}"):
        _operator(decorator(task_id="my_stage", **kwargs), _text, "x")


def test_bad_function_arguments_name_the_task() -> None:
    with pytest.raises(TypeError, match=r"^@task\.fate_llm task '_text': missing a required"):
        _operator(fate_llm_task(model=MODEL), _text)


def _execute(op: Any) -> tuple[Any, RecordingTaskInstance]:
    ti = RecordingTaskInstance(task_id=op.task_id)
    return op.execute({"ti": ti}), ti


def test_llm_stage_runs_the_returned_prompt(worker: EchoWorker) -> None:
    def answer(notes: list[str], question: str) -> str:
        return f"{' '.join(notes)} {question}"

    decorator = fate_llm_task(model=MODEL, system_prompt=SYSTEM, system_prefix_id="sys-v1")
    op = _operator(decorator, answer, ["a", "b"], "why?")
    result, ti = _execute(op)
    assert result == f"{SYSTEM}|a b why?"
    [run] = worker.seen
    task = run.request.task
    assert (task.prompts, task.system, task.prefix_id) == (["a b why?"], SYSTEM, "sys-v1")  # type: ignore[union-attr]
    assert run.key == "d/r/answer/try1"
    assert ti.xcoms[MEASURED_XCOM_KEY]["devices"] == ["cpu1"]


def test_llm_stage_runs_a_returned_batch_and_conversation(worker: EchoWorker) -> None:
    def batch() -> list[str]:
        return ["one", "two"]

    def conversation() -> list[dict[str, str]]:
        return [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"}]

    assert _execute(_operator(fate_llm_task(model=MODEL, batch=2), batch))[0] == [
        "None|one",
        "None|two",
    ]
    assert _execute(_operator(fate_llm_task(model=MODEL), conversation))[0] == "Be terse.|hi"
    assert worker.seen[-1].request.task.system == "Be terse."  # type: ignore[union-attr]


def test_encoder_stages_run_the_returned_texts(worker: EchoWorker) -> None:
    def documents(extra: str) -> list[str]:
        return ["a", "ccc", extra]

    def query_and_documents() -> tuple[str, list[str]]:
        return "q?", ["bb", "a"]

    vectors, _ = _execute(_operator(fate_embed_task(model=MODEL, batch=3), documents, "dd"))
    assert vectors == [[1.0], [3.0], [2.0]]
    best, ti = _execute(
        _operator(fate_rerank_task(model=MODEL, query="q", top_k=2), documents, "dd")
    )
    assert best == ["ccc", "dd"] and ti.xcoms["scores"] == [3.0, 2.0, 1.0]
    assert worker.seen[-1].request.task.query == "q"  # type: ignore[union-attr]
    best, _ = _execute(_operator(fate_rerank_task(model=MODEL, top_k=1), query_and_documents))
    assert best == ["bb"] and worker.seen[-1].request.task.query == "q?"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("decorator", "returned", "message"),
    [
        pytest.param(fate_llm_task(model=MODEL), 3, "returned a int", id="llm-int"),
        pytest.param(fate_llm_task(model=MODEL), [], "returned an empty list", id="llm-empty"),
        pytest.param(
            fate_llm_task(model=MODEL, system_prompt=SYSTEM),
            [{"role": "system", "content": "Other."}, {"role": "user", "content": "hi"}],
            "differs from system_prompt=",
            id="system-conflict",
        ),
        pytest.param(fate_embed_task(model=MODEL), ["a", ""], r"text \[1\] is empty", id="embed"),
        pytest.param(
            fate_rerank_task(model=MODEL), ["q", "d"], "return \\(query, documents\\)", id="pair"
        ),
    ],
)
def test_an_unusable_return_value_fails_the_task_without_retries(
    worker: EchoWorker, decorator: Any, returned: object, message: str
) -> None:
    def stage() -> object:
        return returned

    decorator_name = type(_operator(decorator, stage)).custom_operator_name
    with pytest.raises(AirflowFailException, match=rf"^{decorator_name} task 'stage': .*{message}"):
        _execute(_operator(decorator, stage))
    assert worker.seen == [], "nothing reached the device"
