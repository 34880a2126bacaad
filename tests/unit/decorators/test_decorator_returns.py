"""What a TaskFlow stage function may return (no Airflow needed)."""

from __future__ import annotations

import pytest

from airflow_fate.decorators.returns import (
    Prompts,
    ReturnValueError,
    prompts_from,
    rerank_from,
    texts_from,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("hi", Prompts(("hi",), None, single=True), id="prompt"),
        pytest.param(["a", "b"], Prompts(("a", "b"), None, single=False), id="batch"),
        pytest.param(("a",), Prompts(("a",), None, single=False), id="tuple-batch"),
        pytest.param(
            [{"role": "user", "content": "hi"}], Prompts(("hi",), None, single=True), id="user"
        ),
        pytest.param(
            [{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}],
            Prompts(("hi",), "S", single=True),
            id="system-user",
        ),
    ],
)
def test_accepted_prompts(value: object, expected: Prompts) -> None:
    assert prompts_from(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param(None, "returned a NoneType; return a prompt", id="none"),
        pytest.param("  ", "the prompt is empty", id="blank"),
        pytest.param([], "returned an empty list", id="empty"),
        pytest.param(["a", 1], "returned a list of int, str", id="mixed"),
        pytest.param(["a", ""], r"prompt \[1\] is empty", id="blank-item"),
        pytest.param(
            [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
            r"roles \['user', 'assistant'\]",
            id="multi-turn",
        ),
        pytest.param([{"role": "user"}], r"message \[0\] is", id="no-content"),
        pytest.param(
            [{"role": "user", "content": "a", "name": "x"}], r"message \[0\] is", id="extra-key"
        ),
    ],
)
def test_rejected_prompts_say_what_was_returned(value: object, message: str) -> None:
    with pytest.raises(ReturnValueError, match=message):
        prompts_from(value)


def test_texts_are_embedded_as_returned() -> None:
    assert texts_from("one\ntwo") == ["one\ntwo"]
    assert texts_from(["a", "b"]) == ["a", "b"]
    with pytest.raises(ReturnValueError, match="returned no texts"):
        texts_from([])
    with pytest.raises(ReturnValueError, match=r"returned a dict; return a text"):
        texts_from({"a": 1})


def test_rerank_query_from_the_decorator_or_the_function() -> None:
    assert rerank_from(["a", "b"], "q") == ("q", ["a", "b"])
    assert rerank_from(("q", ["a"]), None) == ("q", ["a"])
    with pytest.raises(ReturnValueError, match=r"returned a list of str; return \(query"):
        rerank_from(["q", "a"], None)
    with pytest.raises(ReturnValueError, match="query= is empty"):
        rerank_from(["a"], " ")
    with pytest.raises(ReturnValueError, match=r"document \[0\] is empty"):
        rerank_from(("q", [""]), None)
