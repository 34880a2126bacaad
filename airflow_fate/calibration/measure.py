"""Time one catalog model on one device: loads per storage tier, prefill and decode rates.

Each repeat starts a fresh worker, so nothing resident maps the model's files and the
first load really reads them:

1. **disk**: the files' pages are dropped from the page cache, then the model loads (the
   cost model's local-disk tier). Skipped where pages cannot be dropped.
2. **host-cache**: the files are read into the page cache, then the model loads again
   under another name, so the worker cannot reuse the first copy (the host-cache tier).
3. **warm**: the same stage on the now resident model: no load, kernels warm. Its
   prefill and decode seconds give the rates.

The disk load is a worker's first, so it also carries one-time costs a reload does not
(lazy imports, first allocations), as a freshly started worker's first stage does. Where
the device is busy with other work, or the file system ignores the page-cache hint, the
two tiers read alike: the figures say what this machine did, not what it could do.

Rates are what the cost model divides by: prefill tokens computed per prefill second,
output tokens per decode second (``decode = output_tokens / rate``). Medians over repeats
are the figures written; every sample is kept for the report.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from airflow_fate.calibration.page_cache import can_drop, drop, model_files, warm
from airflow_fate.calibration.session import WorkerSession
from airflow_fate.runtime.protocol import (
    EmbedTask,
    GenerateTask,
    ModelSource,
    RerankTask,
    StageRequest,
    StageResult,
    Task,
)
from airflow_fate.runtime.synthetic import PASSAGE_WORDS, TEMPLATE_OVERHEAD, filler

Tier = Literal["disk", "host-cache"]
TIERS: tuple[Tier, ...] = ("disk", "host-cache")


@dataclass(frozen=True, slots=True)
class Settings:
    """How much work each measured stage does.

    Attributes:
        repeats: fresh workers per model (medians are taken over them).
        prompt_tokens: about how many tokens each stage prefills.
        new_tokens: tokens a generation stage decodes.
    """

    repeats: int = 3
    prompt_tokens: int = 512
    new_tokens: int = 32


@dataclass
class Measurement:
    """Every sample of one model on one device."""

    model: str
    device: str
    gpu_type: str
    decodes: bool
    load_s: dict[Tier, list[float]] = field(default_factory=dict)
    prefill_tokens_per_s: list[float] = field(default_factory=list)
    decode_tokens_per_s: list[float] = field(default_factory=list)

    def median_load_s(self, tier: Tier) -> float | None:
        samples = self.load_s.get(tier)
        return statistics.median(samples) if samples else None

    @property
    def prefill_rate(self) -> float | None:
        return _median(self.prefill_tokens_per_s)

    @property
    def decode_rate(self) -> float | None:
        """Median decode tokens/s; 0.0 for models that do not decode."""
        return _median(self.decode_tokens_per_s) if self.decodes else 0.0


Step = Callable[[str], None]
"""Called with what is about to be measured (``"cold load from disk (1/3)"``)."""


def measure_model(
    open_session: Callable[[], WorkerSession],
    source: ModelSource,
    gpu_type: str,
    settings: Settings,
    step: Step,
) -> Measurement:
    """Measure ``source`` on the device ``open_session`` binds (see the module docstring).

    Raises:
        MeasurementError: a stage failed or the worker went away.
    """
    files = model_files(source)
    tiers = TIERS if can_drop() else TIERS[1:]
    out: Measurement | None = None
    for r in range(settings.repeats):
        of = f"({r + 1}/{settings.repeats})"
        step(f"starting a worker {of}")
        with open_session() as session:
            if out is None:
                out = Measurement(
                    model=source.name,
                    device=session.binding.label,
                    gpu_type=gpu_type,
                    decodes=source.kind == "causal-lm",
                )
            loaded = source
            for tier in tiers:
                step(f"cold load from {tier} {of}")
                (drop if tier == "disk" else warm)(files)
                loaded = source.model_copy(update={"name": f"{source.name}@{tier}-{r}"})
                result = session.run(f"{loaded.name}/load", request_for(loaded, settings))
                out.load_s.setdefault(tier, []).append(result.timing.load_s)
            step(f"warm run {of}")
            result = session.run(f"{loaded.name}/warm", request_for(loaded, settings))
            _add_rates(out, result)
    assert out is not None, "Settings.repeats is at least 1"
    return out


def request_for(source: ModelSource, settings: Settings) -> StageRequest:
    """A stage of about ``prompt_tokens`` tokens for the model's kind (same each time)."""
    tag = f"calibrate:{source.name.partition('@')[0]}"
    task: Task
    if source.kind == "causal-lm":
        task = GenerateTask(
            prompts=[filler(tag, settings.prompt_tokens)],
            max_new_tokens=settings.new_tokens,
            ignore_eos=True,
        )
        kv = settings.prompt_tokens + settings.new_tokens + TEMPLATE_OVERHEAD
        return StageRequest(model=source, task=task, kv_tokens=kv)
    count = max(1, settings.prompt_tokens // (PASSAGE_WORDS + 2))
    passages = [filler(f"{tag}:{i}", PASSAGE_WORDS) for i in range(count)]
    if source.kind == "embedding":
        task = EmbedTask(texts=passages)
    else:
        task = RerankTask(query=filler(f"{tag}:query", 12), documents=passages)
    return StageRequest(model=source, task=task)


def _add_rates(out: Measurement, result: StageResult) -> None:
    t, n = result.timing, result.tokens
    if t.prefill_s > 0 and n.prefill_tokens > 0:
        out.prefill_tokens_per_s.append(n.prefill_tokens / t.prefill_s)
    if out.decodes and t.decode_s > 0 and n.output_tokens > 0:
        out.decode_tokens_per_s.append(n.output_tokens / t.decode_s)


def _median(samples: list[float]) -> float | None:
    return statistics.median(samples) if samples else None
