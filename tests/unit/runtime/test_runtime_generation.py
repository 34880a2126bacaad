"""Real generation with SmolLM2-135M on CPU: outputs, residency, prefix reuse, limits."""

from __future__ import annotations

import pytest
from runtime_support import FIRST_TASK, SMOL, WarmRuntime, cpu_binding, run_stage

from airflow_fate.runtime.errors import StageError
from airflow_fate.runtime.protocol import GenerateTask, ModelSource, StageRequest
from airflow_fate.runtime.synthetic import system_prompt

pytestmark = pytest.mark.slow


def test_generation_is_real_text(warm: WarmRuntime) -> None:
    first = warm.first
    assert first.texts is not None
    assert "paris" in first.texts[0].lower()
    assert first.tokens.output_tokens >= 1
    assert first.tokens.input_tokens == first.tokens.prefill_tokens > 5
    assert not first.model_warm
    assert first.timing.load_s > 1.0  # dequantising the GGUF file takes seconds
    assert first.timing.prefill_s > 0
    assert first.timing.decode_s > 0


def test_second_stage_of_same_model_is_resident(warm: WarmRuntime, smol: ModelSource) -> None:
    second, wall = run_stage(warm.runtime, "second", StageRequest(model=smol, task=FIRST_TASK))
    assert second.model_warm
    assert second.timing.load_s == 0.0
    assert wall < warm.first_wall_s
    assert second.texts == warm.first.texts  # greedy: same prompt, same answer


def test_warm_prefix_skips_its_tokens_and_keeps_greedy_output(
    warm: WarmRuntime, smol: ModelSource
) -> None:
    task = GenerateTask(
        prompts=["Summarise the notes in one sentence."],
        system=system_prompt("test-prefix-reuse", 60),
        prefix_id="test-prefix-reuse",
        max_new_tokens=12,
    )
    request = StageRequest(model=smol, task=task, kv_tokens=120)
    cold, _ = run_stage(warm.runtime, "cold", request)
    hot, _ = run_stage(warm.runtime, "hot", request)
    assert not cold.prefix_warm
    assert hot.prefix_warm
    assert cold.tokens.reused_prefix_tokens == 0
    reused = hot.tokens.reused_prefix_tokens
    assert reused > 50  # the rendered system turn, ~60 words plus role markers
    assert cold.tokens.prefill_tokens - hot.tokens.prefill_tokens == reused
    assert hot.tokens.input_tokens == cold.tokens.input_tokens
    assert hot.texts == cold.texts


def test_prefix_id_with_different_text_is_recomputed(warm: WarmRuntime, smol: ModelSource) -> None:
    def request(words: int) -> StageRequest:
        task = GenerateTask(
            prompts=["Hi."],
            system=system_prompt("test-prefix-changed", words),
            prefix_id="test-prefix-changed",
            max_new_tokens=2,
        )
        return StageRequest(model=smol, task=task)

    run_stage(warm.runtime, "a", request(30))
    changed, _ = run_stage(warm.runtime, "b", request(40))
    assert not changed.prefix_warm
    assert changed.tokens.reused_prefix_tokens == 0


def test_batch_shares_the_prefix_within_a_stage(warm: WarmRuntime, smol: ModelSource) -> None:
    task = GenerateTask(
        prompts=["Say yes.", "Say no.", "Say maybe."],
        system=system_prompt("test-prefix-batch", 30),
        prefix_id="test-prefix-batch",
        max_new_tokens=3,
        ignore_eos=True,
    )
    result, _ = run_stage(warm.runtime, "batch", StageRequest(model=smol, task=task))
    assert result.texts is not None and len(result.texts) == 3
    assert result.tokens.output_tokens == 9  # ignore_eos: exactly max_new_tokens each
    # computed once, reused by the two later prompts
    prefix = result.tokens.reused_prefix_tokens // 2
    assert result.tokens.reused_prefix_tokens == 2 * prefix > 0


def test_sampling_is_seeded(warm: WarmRuntime, smol: ModelSource) -> None:
    def sample(seed: int) -> list[str]:
        task = GenerateTask(
            prompts=["Write a word."], max_new_tokens=6, temperature=1.0, top_p=0.9, seed=seed
        )
        result, _ = run_stage(warm.runtime, f"s{seed}", StageRequest(model=smol, task=task))
        assert result.texts is not None
        return result.texts

    assert sample(1) == sample(1)


def test_prompt_longer_than_context_fails_clearly(warm: WarmRuntime, smol: ModelSource) -> None:
    task = GenerateTask(prompts=["data " * 9000], max_new_tokens=4)
    with pytest.raises(StageError) as err:
        run_stage(warm.runtime, "long", StageRequest(model=smol, task=task))
    assert err.value.reason == "context-length"
    assert "context of 8192 tokens" in err.value.message
    assert SMOL in err.value.message


def test_model_larger_than_budget_fails_without_loading(smol: ModelSource) -> None:
    from airflow_fate.runtime.device import DeviceRuntime

    runtime = DeviceRuntime(cpu_binding(memory_mib=256))
    with pytest.raises(StageError) as err:
        run_stage(runtime, "big", StageRequest(model=smol, task=FIRST_TASK))
    assert err.value.reason == "out-of-memory"
    assert "budget of 0.250 GiB" in err.value.message
    assert runtime.resident() == []


def test_stage_given_other_devices_fails(warm: WarmRuntime, smol: ModelSource) -> None:
    from airflow_fate.runtime.device import DeviceRuntime
    from airflow_fate.runtime.protocol import RunStage

    runtime = warm.runtime
    assert isinstance(runtime, DeviceRuntime)
    msg = RunStage(key="x", devices=["cpu7"], request=StageRequest(model=smol, task=FIRST_TASK))
    with pytest.raises(StageError) as err:
        runtime.run(msg)
    assert err.value.reason == "device-mismatch"
    assert "cpu7" in err.value.message and "cpu0" in err.value.message
