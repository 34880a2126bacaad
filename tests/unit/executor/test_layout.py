"""A DAG's tasks -> stages with their nearest stage ancestors, and rejected stages."""

from __future__ import annotations

import pytest

from airflow_fate.executor.layout import build_layout
from tests.unit.executor.conftest import meta, node

PREFIX = {"id": "p", "tokens": 99}


def test_stage_parents_look_through_cpu_tasks(catalog, cluster) -> None:
    tasks = [
        node("fetch"),
        node("embed", "fetch", config=meta("embed", output_tokens=0)),
        node("tool", "embed"),
        node("answer", "tool", config=meta()),
        node("judge", "answer", "tool", config=meta()),
    ]
    layout = build_layout(tasks, catalog, cluster)
    assert list(layout.stages) == ["embed", "answer", "judge"]
    assert layout.parents == {"embed": [], "answer": ["embed"], "judge": ["embed", "answer"]}
    assert layout.rejected == {}
    wf = layout.workflow("d/r1", "d", 0.0)
    assert [s.id for s in wf.stages] == ["embed", "answer", "judge"]


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        pytest.param({"fate": {"model": "small-lm"}}, "input_tokens: Field required", id="missing"),
        pytest.param({"fate": "small-lm"}, "must be a mapping", id="not-a-mapping"),
        pytest.param(meta("gpt-9"), "unknown model 'gpt-9'", id="unknown-model"),
        pytest.param(
            {
                "fate": {
                    "model": "small-lm",
                    "input_tokens": 10,
                    "prefix": {"id": "p", "tokens": 99},
                }
            },
            "prefix.tokens (99) exceeds input_tokens (10)",
            id="prefix-too-long",
        ),
        pytest.param(meta("big-lm", max_shards=1), "min_shards (2) is greater", id="shards"),
    ],
)
def test_bad_metadata_is_rejected_with_a_reason(catalog, cluster, config, needle) -> None:
    tasks = [
        node("a", config=meta()),
        node("bad", "a", config=config),
        node("c", "bad", config=meta()),
    ]
    layout = build_layout(tasks, catalog, cluster)
    assert set(layout.stages) == {"a", "c"}
    assert needle in layout.rejected["bad"]
    assert layout.rejected["bad"].startswith('executor_config["fate"]')
    assert layout.parents["c"] == ["a"]  # the rejected stage is looked through


def test_a_model_that_fits_no_node_is_rejected(catalog) -> None:
    from tests.conftest import make_cluster

    small = make_cluster([("n2", "small", 1)])
    layout = build_layout([node("big", config=meta("big-lm"))], catalog, small)
    assert "fits no node" in layout.rejected["big"]
