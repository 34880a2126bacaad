"""Fuzzed operator arguments: a DAG file either parses or says which task and argument.

A DAG author's mistake surfaces as an import error of the DAG file in Airflow's UI; it
must read ``task 'answer': max_new_tokens: ...`` rather than a `TypeError` from deep in
an estimate. Arguments the operator accepts must give metadata the executor reads back.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_fate.operators.metadata import read_metadata
from tests.fuzz.checks import CASES, assert_one_line
from tests.fuzz.strategies import MARKUP, SCALARS

sdk = pytest.importorskip("airflow.sdk")

TASK_ID = "fuzzed_stage"

_TEXT = st.one_of(st.text(max_size=30), st.just(MARKUP), st.just("{{ ti.xcom_pull('a') }}"))
_COUNT = st.one_of(st.integers(-3, 5000), st.sampled_from([0, 1, 2**63, 10**30]))
_ANY = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), _TEXT.map(lambda t: [t]))


def _arg(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly plausible values of an argument, sometimes anything at all."""
    return st.one_of(good, good, good, _ANY)


COMMON = {
    "model": _arg(st.sampled_from(["small-lm", "mid-lm", "", MARKUP])),
    "input_tokens": _arg(st.none() | _COUNT),
    "context_tokens": _arg(_COUNT),
    "output_mb": _arg(st.none() | st.floats(-1, 1e6)),
}

ARGUMENTS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "LLMStageOperator": {
        **COMMON,
        "prompt": _arg(st.none() | _TEXT),
        "prompts": _arg(st.none() | st.lists(_TEXT, max_size=4)),
        "system_prompt": _arg(st.none() | _TEXT),
        "system_prefix_id": _arg(st.none() | st.sampled_from(["sys-v1", "", MARKUP])),
        "max_new_tokens": _arg(_COUNT),
        "min_shards": _arg(st.none() | _COUNT),
        "max_shards": _arg(st.none() | _COUNT),
        "temperature": _arg(st.floats(allow_nan=True, allow_infinity=True)),
    },
    "EmbeddingOperator": {
        **COMMON,
        "texts": _arg(_TEXT | st.lists(_TEXT, max_size=4)),
        "decimals": _arg(_COUNT),
    },
    "RerankOperator": {
        **COMMON,
        "query": _arg(_TEXT),
        "documents": _arg(_TEXT | st.lists(_TEXT, max_size=4)),
        "top_k": _arg(_COUNT),
    },
}

REQUIRED = {
    "LLMStageOperator": {"model"},
    "EmbeddingOperator": {"model", "texts"},
    "RerankOperator": {"model", "query", "documents"},
}


def _calls() -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    return st.sampled_from(sorted(ARGUMENTS)).flatmap(
        lambda name: st.tuples(
            st.just(name),
            st.fixed_dictionaries(
                {k: v for k, v in ARGUMENTS[name].items() if k in REQUIRED[name]},
                optional={k: v for k, v in ARGUMENTS[name].items() if k not in REQUIRED[name]},
            ),
        )
    )


@given(_calls())
def test_operator_arguments(call: tuple[str, dict[str, Any]]) -> None:
    CASES["operator arguments"] += 1
    name, kwargs = call
    from airflow_fate import operators

    cls = getattr(operators, name)
    try:
        with sdk.DAG("fuzz", schedule=None):
            op = cls(task_id=TASK_ID, **kwargs)
    except Exception as exc:
        _assert_argument_error(exc, kwargs)
        return
    metadata = read_metadata(op.executor_config)
    assert metadata is not None and metadata.model == kwargs["model"]


def _assert_argument_error(exc: BaseException, kwargs: dict[str, Any]) -> None:
    """The task, an argument the call gave (or the prompt pair) and a reason, one line."""
    from airflow_fate.operators.arguments import StageArgumentError

    assert isinstance(exc, StageArgumentError), f"{type(exc).__name__} escaped: {exc!r}"
    assert_one_line(str(exc))
    assert exc.task_id == TASK_ID and str(exc).startswith(f"task {TASK_ID!r}: "), exc
    assert exc.argument in set(kwargs) | {"prompt", "prompts"}, (exc.argument, kwargs)
    assert exc.argument in exc.reason, exc
