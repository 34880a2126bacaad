"""Real embeddings and rerank scores from all-MiniLM-L6-v2; the other loader paths."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from runtime_support import cpu_binding, run_stage

from airflow_fate.domain.models import ModelCatalog
from airflow_fate.runtime.errors import StageError
from airflow_fate.runtime.protocol import (
    EmbedTask,
    GenerateTask,
    ModelSource,
    RerankTask,
    StageRequest,
)
from airflow_fate.runtime.registry import resolve_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def encoder_runtime() -> object:
    from airflow_fate.runtime.device import DeviceRuntime

    return DeviceRuntime(cpu_binding(memory_mib=1024))


def _cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_embeddings_are_normalised_and_semantic(encoder_runtime: object, mini: ModelSource) -> None:
    texts = [
        "A cat sits on the mat.",
        "A kitten is resting on a rug.",
        "Quarterly revenue grew by eight percent.",
    ]
    result, _ = run_stage(
        encoder_runtime, "e", StageRequest(model=mini, task=EmbedTask(texts=texts))
    )
    vectors = result.embeddings
    assert vectors is not None and len(vectors) == 3
    assert all(len(v) == 384 for v in vectors)
    assert all(math.isclose(_cos(v, v), 1.0, rel_tol=1e-4) for v in vectors)
    assert _cos(vectors[0], vectors[1]) > _cos(vectors[0], vectors[2]) + 0.2
    assert result.tokens.prefill_tokens == result.tokens.input_tokens > 10
    assert result.tokens.output_tokens == 0


def test_rerank_prefers_the_relevant_document(encoder_runtime: object, mini: ModelSource) -> None:
    task = RerankTask(
        query="How do I bake bread?",
        documents=["The stock market closed higher.", "Knead the dough and bake it at 220 C."],
    )
    result, _ = run_stage(encoder_runtime, "r", StageRequest(model=mini, task=task))
    assert result.scores is not None
    assert result.scores[1] > result.scores[0]


def test_second_encoder_stage_is_warm(encoder_runtime: object, mini: ModelSource) -> None:
    request = StageRequest(model=mini, task=EmbedTask(texts=["one"]))
    run_stage(encoder_runtime, "w1", request)
    again, _ = run_stage(encoder_runtime, "w2", request)
    assert again.model_warm and again.timing.load_s == 0.0


def test_encoder_cannot_generate(encoder_runtime: object, mini: ModelSource) -> None:
    request = StageRequest(model=mini, task=GenerateTask(prompts=["hi"]))
    with pytest.raises(StageError) as err:
        run_stage(encoder_runtime, "g", request)
    assert err.value.reason == "bad-request"
    assert "cannot generate" in err.value.message


def test_text_longer_than_context_fails(encoder_runtime: object, mini: ModelSource) -> None:
    request = StageRequest(model=mini, task=EmbedTask(texts=["word " * 600]))
    with pytest.raises(StageError) as err:
        run_stage(encoder_runtime, "long", request)
    assert err.value.reason == "context-length"
    assert "context of 512 tokens" in err.value.message


def test_lru_evicts_least_recent_model(mini: ModelSource, tmp_path: Path) -> None:
    """Two encoders that do not fit together: loading the second evicts the first."""
    from airflow_fate.runtime.device import DeviceRuntime

    other = mini.model_copy(update={"name": "minilm-copy"})
    budget = int(1.5 * mini.weights_bytes / 1024**2)  # one fits, two do not
    runtime = DeviceRuntime(cpu_binding(memory_mib=budget))
    run_stage(runtime, "a", StageRequest(model=mini, task=EmbedTask(texts=["x"])))
    second, _ = run_stage(runtime, "b", StageRequest(model=other, task=EmbedTask(texts=["x"])))
    assert second.evicted == [mini.name]
    assert runtime.resident() == ["minilm-copy"]


def _tiny_model_dir(tmp_path: Path, mini: ModelSource, architecture: str) -> Path:
    """A random-weight model directory with MiniLM's tokenizer (the production loader path)."""
    import transformers

    target = tmp_path / architecture
    src = Path(mini.directory)
    target.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(src / name, target / name)
    model: transformers.PreTrainedModel
    if architecture == "LlamaForCausalLM":
        llama = transformers.LlamaConfig(
            vocab_size=30522,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=256,
        )
        model = transformers.LlamaForCausalLM(llama)
    else:
        bert = transformers.BertConfig(
            vocab_size=30522,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
        )
        bert.num_labels = 1
        model = transformers.BertForSequenceClassification(bert)
    model.save_pretrained(target)
    return target


def test_hugging_face_directory_causal_lm(tmp_path: Path, mini: ModelSource) -> None:
    directory = _tiny_model_dir(tmp_path, mini, "LlamaForCausalLM")
    catalog = ModelCatalog.model_validate(
        {
            "models": {
                "tiny-llama": {
                    "path": directory.name,
                    "weights_gib": 0.01,
                    "kv_bytes_per_token": 512,
                    "prefill_tokens_per_s": 1000,
                    "decode_tokens_per_s": 100,
                }
            }
        }
    )
    source = resolve_model("tiny-llama", catalog, tmp_path)
    assert source.kind == "causal-lm" and source.gguf_file is None
    from airflow_fate.runtime.device import DeviceRuntime

    runtime = DeviceRuntime(cpu_binding(memory_mib=256))
    task = GenerateTask(
        prompts=["hello there"],
        system="be brief",
        prefix_id="p",
        max_new_tokens=5,
        ignore_eos=True,
    )
    cold, _ = run_stage(runtime, "a", StageRequest(model=source, task=task))
    hot, _ = run_stage(runtime, "b", StageRequest(model=source, task=task))
    assert cold.tokens.output_tokens == 5
    assert hot.prefix_warm and hot.texts == cold.texts
    with pytest.raises(StageError) as err:  # max_position_embeddings 256
        run_stage(
            runtime,
            "c",
            StageRequest(
                model=source, task=GenerateTask(prompts=["data " * 300], max_new_tokens=1)
            ),
        )
    assert err.value.reason == "context-length"


def test_cross_encoder_reranks(tmp_path: Path, mini: ModelSource) -> None:
    directory = _tiny_model_dir(tmp_path, mini, "BertForSequenceClassification")
    assert json.loads((directory / "config.json").read_text())["architectures"] == [
        "BertForSequenceClassification"
    ]
    catalog = ModelCatalog.model_validate(
        {
            "models": {
                "tiny-ce": {
                    "path": str(directory),
                    "weights_gib": 0.01,
                    "kv_bytes_per_token": 0,
                    "prefill_tokens_per_s": 1000,
                    "decode_tokens_per_s": 0,
                }
            }
        }
    )
    source = resolve_model("tiny-ce", catalog)
    assert source.kind == "cross-encoder"
    from airflow_fate.runtime.device import DeviceRuntime

    runtime = DeviceRuntime(cpu_binding(memory_mib=256))
    task = RerankTask(query="q", documents=["a b", "c d e"])
    result, _ = run_stage(runtime, "ce", StageRequest(model=source, task=task))
    assert result.scores is not None and len(result.scores) == 2
    assert all(math.isfinite(s) for s in result.scores)
    with pytest.raises(StageError, match="cannot embed"):
        run_stage(runtime, "ce2", StageRequest(model=source, task=EmbedTask(texts=["x"])))
