"""Synthetic prompt text for workload stages (no torch)."""

from __future__ import annotations

from airflow_fate.domain.graph import StageInfo
from airflow_fate.runtime.protocol import (
    EmbedTask,
    GenerateTask,
    ModelKind,
    ModelSource,
    RerankTask,
    StageResult,
    StageTiming,
    TokenCounts,
)
from airflow_fate.runtime.synthetic import output_text, stage_request, system_prompt


def _stage(**kw: object) -> StageInfo:
    base: dict[str, object] = {
        "uid": 0,
        "workflow": 0,
        "workflow_id": "wf",
        "stage_id": "s",
        "model": "m",
        "input_tokens": 200,
        "output_tokens": 16,
        "output_bytes": 0.0,
        "prefix_id": None,
        "prefix_tokens": 0,
        "parents": (),
        "children": (),
        "min_shards": 1,
        "max_shards": 1,
    }
    base.update(kw)
    return StageInfo(**base)  # type: ignore[arg-type]


def _source(kind: ModelKind) -> ModelSource:
    return ModelSource(name="m", kind=kind, directory="/m", weights_bytes=1)


def test_shared_prefix_text_is_identical_and_sized() -> None:
    a = stage_request(_stage(prefix_id="sys", prefix_tokens=80), _source("causal-lm"))
    b = stage_request(_stage(stage_id="t", prefix_id="sys", prefix_tokens=80), _source("causal-lm"))
    assert isinstance(a.task, GenerateTask) and isinstance(b.task, GenerateTask)
    assert a.task.system == b.task.system == system_prompt("sys", 80)
    assert 70 <= len(a.task.system.split()) <= 80
    assert a.task.prefix_id == "sys"
    assert a.task.prompts != b.task.prompts  # stage-specific text differs
    assert a.task.max_new_tokens == 16 and a.task.ignore_eos
    assert a.kv_tokens == 216


def test_prompts_are_deterministic_and_carry_parent_output() -> None:
    s = _stage(parents=(1,))
    one = stage_request(s, _source("causal-lm"), ["the parent said graph queue cache"])
    two = stage_request(s, _source("causal-lm"), ["the parent said graph queue cache"])
    assert one == two
    assert isinstance(one.task, GenerateTask)
    assert "the parent said graph queue cache" in one.task.prompts[0]
    assert one.task.system is None


def test_encoder_stages_embed_or_rerank() -> None:
    embed = stage_request(_stage(input_tokens=340), _source("embedding"))
    assert isinstance(embed.task, EmbedTask) and len(embed.task.texts) == 10
    rerank = stage_request(_stage(parents=(3,)), _source("embedding"), ["find the river"])
    assert isinstance(rerank.task, RerankTask) and rerank.task.query == "find the river"
    cross = stage_request(_stage(), _source("cross-encoder"))
    assert isinstance(cross.task, RerankTask)


def test_output_text_hands_children_the_best_passages() -> None:
    request = stage_request(_stage(parents=(3,), input_tokens=102), _source("embedding"), ["q"])
    assert isinstance(request.task, RerankTask)
    docs = request.task.documents
    result = StageResult(
        key="k",
        model="m",
        model_warm=True,
        prefix_warm=False,
        timing=StageTiming(load_s=0, prefill_s=0, decode_s=0, total_s=0),
        tokens=TokenCounts(
            input_tokens=1, prefill_tokens=1, reused_prefix_tokens=0, output_tokens=0
        ),
        scores=[0.1, 0.9, 0.5],
    )
    assert output_text(request, result) == f"{docs[1]}\n{docs[2]}"
