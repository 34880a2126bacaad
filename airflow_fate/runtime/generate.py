"""Chat generation with a reusable system-prompt KV cache, timed by phase.

Each prompt is rendered with the model's chat template and split at the end of the
system turn: the system part is the *prefix*, whose KV is computed once and kept in the
worker's prefix cache under ``(model, prefix id)``; the rest is prefilled on top of a
copy of it. A stage whose prefix is warm therefore prefills only its own tokens.

Cold and warm runs take the same arithmetic path (prefix forward, then suffix forward on
the prefix's KV), so greedy outputs are bit-identical whether or not the prefix was warm.
Prompts of a batch run one after another: on CPU batching buys little, and unpadded
sequences are what lets every prompt share the prefix KV exactly.

The loop is written out (not ``model.generate``) so that prefill and decode are timed
separately and token counts are exact.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

import torch

from airflow_fate.runtime.errors import StageError
from airflow_fate.runtime.loaders import LoadedModel
from airflow_fate.runtime.lru import BudgetLru
from airflow_fate.runtime.protocol import GenerateTask

PrefixKey = tuple[str, str]


@dataclass(frozen=True)
class PrefixEntry:
    """The KV of a rendered system prompt, with the token ids it was computed for."""

    token_ids: tuple[int, ...]
    cache: Any


@dataclass(frozen=True)
class GenerationOutcome:
    """Texts and measured work of one generation task."""

    texts: list[str]
    prefill_s: float
    decode_s: float
    input_tokens: int
    prefill_tokens: int
    reused_tokens: int
    output_tokens: int
    prefix_warm: bool


def generate(
    lm: LoadedModel, task: GenerateTask, prefixes: BudgetLru[PrefixKey, PrefixEntry]
) -> GenerationOutcome:
    """Run ``task`` on ``lm``, reusing and filling the prefix cache ``prefixes``.

    Raises:
        StageError: ``context-length`` when a prompt plus ``max_new_tokens`` exceeds the
            model's context (checked before any compute).
    """
    tok = lm.tokenizer
    rendered = [render(tok, task.system, p) for p in task.prompts]
    head = rendered[0][0]
    if any(h != head for h, _ in rendered):
        head = ""  # the template does not isolate the system turn: no sharing
    head_ids = _ids(tok, head)
    bodies = [_ids(tok, full[len(head) :]) for _, full in rendered]
    for i, body in enumerate(bodies):
        need = len(head_ids) + len(body) + task.max_new_tokens
        if need > lm.context_tokens:
            raise StageError(
                "context-length",
                f"prompt {i} for model {lm.source.name!r} has {len(head_ids) + len(body)} "
                f"tokens; with max_new_tokens={task.max_new_tokens} it needs {need}, more "
                f"than the model's context of {lm.context_tokens} tokens",
            )
    eos = _eos_ids(lm)
    prefill_s = decode_s = 0.0
    computed = 0
    entry: PrefixEntry | None = None
    warm = False
    with torch.inference_mode():
        if task.prefix_id and head_ids:
            key = (lm.source.name, task.prefix_id)
            entry = prefixes.get(key)
            warm = entry is not None and entry.token_ids == tuple(head_ids)
            if not warm:
                t0 = time.perf_counter()
                _, cache = _forward(lm, head_ids, None)
                _sync(lm)
                prefill_s += time.perf_counter() - t0
                computed += len(head_ids)
                entry = PrefixEntry(tuple(head_ids), cache)
                prefixes.put(key, entry, _cache_nbytes(cache, lm, len(head_ids)))
        texts: list[str] = []
        generated = 0
        for i, body in enumerate(bodies):
            if entry is not None:
                ids, cache = body, copy.deepcopy(entry.cache)
            else:
                ids, cache = head_ids + body, None
            t0 = time.perf_counter()
            logits, cache = _forward(lm, ids, cache)
            _sync(lm)
            t1 = time.perf_counter()
            computed += len(ids)
            out = _decode(lm, logits, cache, task, eos, seed=task.seed + i)
            decode_s += time.perf_counter() - t1
            prefill_s += t1 - t0
            generated += len(out)
            texts.append(tok.decode(out, skip_special_tokens=True))
    total_in = sum(len(head_ids) + len(b) for b in bodies)
    return GenerationOutcome(
        texts=texts,
        prefill_s=prefill_s,
        decode_s=decode_s,
        input_tokens=total_in,
        prefill_tokens=computed,
        reused_tokens=total_in - computed,
        output_tokens=generated,
        prefix_warm=warm,
    )


def render(tokenizer: Any, system: str | None, user: str) -> tuple[str, str]:
    """(system-turn text, full prompt text); the first is a prefix of the second or ""."""
    if not getattr(tokenizer, "chat_template", None):
        head = f"{system}\n\n" if system else ""
        return head, f"{head}{user}\n"
    messages = [{"role": "user", "content": user}]
    if system:
        messages.insert(0, {"role": "system", "content": system})
    full = str(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
    if not system:
        return "", full
    try:
        head = str(tokenizer.apply_chat_template(messages[:1], tokenize=False))
    except Exception:  # some templates refuse a conversation without a user turn
        return "", full
    return (head, full) if full.startswith(head) else ("", full)


def _ids(tokenizer: Any, text: str) -> list[int]:
    if not text:
        return []
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _sync(lm: LoadedModel) -> None:
    """Wait for queued CUDA kernels, so prefill and decode times are split correctly.

    CUDA launches are asynchronous: without this the prefill's kernels would be charged
    to the first decode step (measured on an H200: prefill under-reported by ~25%).
    """
    if lm.device.type == "cuda":
        torch.cuda.synchronize(lm.device)


def _forward(lm: LoadedModel, ids: list[int], cache: Any) -> tuple[torch.Tensor, Any]:
    """Logits of the last position and the grown cache."""
    input_ids = torch.tensor([ids], dtype=torch.long, device=lm.device)
    out = lm.model(input_ids=input_ids, use_cache=True, **{lm.cache_arg: cache})
    return out.logits[0, -1], getattr(out, lm.cache_arg)


def _decode(
    lm: LoadedModel,
    logits: torch.Tensor,
    cache: Any,
    task: GenerateTask,
    eos: frozenset[int],
    seed: int,
) -> list[int]:
    """Generate up to ``max_new_tokens`` ids from the prefill's last logits."""
    gen = torch.Generator().manual_seed(seed) if task.temperature > 0 else None
    out: list[int] = []
    while True:
        nxt = _pick(logits, task, gen)
        out.append(nxt)
        if len(out) >= task.max_new_tokens or (nxt in eos and not task.ignore_eos):
            return out
        logits, cache = _forward(lm, [nxt], cache)


def _pick(logits: torch.Tensor, task: GenerateTask, gen: torch.Generator | None) -> int:
    if gen is None:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float().cpu() / task.temperature, dim=-1)
    if task.top_p < 1.0:
        sorted_p, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_p, dim=-1) - sorted_p < task.top_p
        probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
    return int(torch.multinomial(probs, 1, generator=gen))


def _eos_ids(lm: LoadedModel) -> frozenset[int]:
    ids: set[int] = set()
    for source in (getattr(lm.model, "generation_config", None), lm.tokenizer):
        value = getattr(source, "eos_token_id", None)
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list):
            ids.update(v for v in value if isinstance(v, int))
    return frozenset(ids)


def _cache_nbytes(cache: Any, lm: LoadedModel, tokens: int) -> int:
    """Bytes held by a KV cache (transformers 4 and 5 layouts), else the catalog figure."""
    tensors: list[Any] = []
    for layer in getattr(cache, "layers", None) or []:
        tensors += [getattr(layer, "keys", None), getattr(layer, "values", None)]
    tensors += list(getattr(cache, "key_cache", None) or [])
    tensors += list(getattr(cache, "value_cache", None) or [])
    total = sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))
    return int(total) if total else lm.source.kv_bytes_per_token * tokens
