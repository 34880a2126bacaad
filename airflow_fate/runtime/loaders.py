"""Load a `ModelSource` with torch + transformers onto the worker's devices.

Causal LMs load with ``AutoModelForCausalLM`` (GGUF files with ``gguf_file``, which
dequantises them: that is why a cold load costs seconds even for a 135M model), sentence
embedders with ``AutoModel`` (pooling is done here, so sentence-transformers is not
needed), cross-encoders with ``AutoModelForSequenceClassification``. CPU workers load
float32; GPU workers load the checkpoint's dtype, spread with ``device_map="auto"`` when
the worker holds several GPUs.

This module imports torch: only the worker process imports it.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch
import transformers

from airflow_fate.runtime.binding import DeviceBinding
from airflow_fate.runtime.errors import StageError, is_out_of_memory, memory_exhausted
from airflow_fate.runtime.protocol import ModelSource

_SANE_MAX_CONTEXT = 10_000_000
"""Tokenizers report ~1e30 when they do not know a limit; anything above this is that."""


@dataclass
class LoadedModel:
    """A model resident on a worker.

    Attributes:
        source: what was loaded.
        tokenizer: its tokenizer.
        model: the torch module, in eval mode.
        device: where inputs go (the first shard's device).
        context_tokens: longest sequence the model accepts.
        nbytes: measured bytes of parameters and buffers.
        cache_arg: the forward keyword for the KV cache (``cache`` in transformers 5,
            ``past_key_values`` before).
    """

    source: ModelSource
    tokenizer: Any
    model: Any
    device: torch.device
    context_tokens: int
    nbytes: int
    cache_arg: str


def load_model(source: ModelSource, binding: DeviceBinding) -> LoadedModel:
    """Load ``source`` for ``binding``'s devices.

    Raises:
        StageError: ``model-file`` when the files are missing or not loadable;
            ``out-of-memory`` (with restart) when the device runs out of memory.
    """
    kwargs: dict[str, Any] = {}
    if source.gguf_file:
        kwargs["gguf_file"] = source.gguf_file
    model_kwargs = dict(kwargs)
    model_kwargs[_dtype_kwarg()] = torch.float32 if binding.platform == "cpu" else "auto"
    if binding.platform == "cuda" and len(binding.cuda_indices) > 1:
        model_kwargs["device_map"] = "auto"
    auto = {
        "causal-lm": transformers.AutoModelForCausalLM,
        "embedding": transformers.AutoModel,
        "cross-encoder": transformers.AutoModelForSequenceClassification,
    }[source.kind]
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(source.directory, **kwargs)
        model = auto.from_pretrained(source.directory, **model_kwargs)
    except (OSError, ValueError, KeyError, RuntimeError, MemoryError) as exc:
        if is_out_of_memory(exc) or memory_exhausted():
            raise StageError(
                "out-of-memory", f"out of memory loading {source.name}: {exc}", restart=True
            ) from None
        where = source.directory + (f"/{source.gguf_file}" if source.gguf_file else "")
        raise StageError(
            "model-file", f"cannot load model {source.name!r} from {where}: {exc}"
        ) from None
    if "device_map" not in model_kwargs:
        model = model.to(_device(binding))
    model.eval()
    device = next(model.parameters()).device
    nbytes = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    return LoadedModel(
        source=source,
        tokenizer=tokenizer,
        model=model,
        device=device,
        context_tokens=_context_tokens(model.config, tokenizer),
        nbytes=int(nbytes),
        cache_arg=_cache_arg(model) if source.kind == "causal-lm" else "",
    )


def import_model_code() -> None:
    """Import transformers' model and tokenizer machinery now, once per process.

    It takes seconds (most of a small model's first "load" otherwise); a worker does it
    at start, so a stage's measured load time is the model's own cost and the correction
    learns one load factor per model rather than a first-load outlier.
    """
    for name in (
        "PreTrainedModel",
        "PreTrainedTokenizerFast",
        "AutoModel",
        "AutoModelForCausalLM",
        "AutoModelForSequenceClassification",
        "AutoTokenizer",
    ):
        getattr(transformers, name)


def _dtype_kwarg() -> str:
    """``dtype`` since transformers 4.56; ``torch_dtype`` (now deprecated) before."""
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def _device(binding: DeviceBinding) -> torch.device:
    return torch.device("cuda:0" if binding.platform == "cuda" else "cpu")


def _context_tokens(config: Any, tokenizer: Any) -> int:
    limits = [
        getattr(config, name, None)
        for name in ("max_position_embeddings", "n_positions", "max_sequence_length")
    ]
    limits.append(getattr(tokenizer, "model_max_length", None))
    sane = [int(x) for x in limits if isinstance(x, int) and 0 < x < _SANE_MAX_CONTEXT]
    if not sane:
        return _SANE_MAX_CONTEXT
    return min(sane)


def _cache_arg(model: Any) -> str:
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"
