"""Encoder tasks: sentence embeddings and rerank scores, timed as prefill.

Embeddings are the attention-masked mean of the last hidden states, L2-normalised: the
pooling sentence-transformers applies for all-MiniLM-L6-v2 and most embedders, done here
so the worker needs only transformers. Rerank scores are cosine similarities for an
embedding model, and the relevance logit for a cross-encoder.

Texts longer than the model's context fail the stage rather than being truncated, so a
workload that outgrows its model is noticed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from airflow_fate.runtime.errors import StageError
from airflow_fate.runtime.loaders import LoadedModel


@dataclass(frozen=True)
class EncodeOutcome:
    """Vectors or scores of one encoder task, and the work it took."""

    seconds: float
    tokens: int
    embeddings: list[list[float]] | None = None
    scores: list[float] | None = None


def embed(lm: LoadedModel, texts: list[str]) -> EncodeOutcome:
    """Normalised sentence embeddings of ``texts``."""
    _require(lm, "embedding", "embed")
    batch = _tokenize(lm, texts)
    t0 = time.perf_counter()
    vectors = _pooled(lm, batch)
    seconds = time.perf_counter() - t0
    return EncodeOutcome(seconds=seconds, tokens=_count(batch), embeddings=vectors.cpu().tolist())


def rerank(lm: LoadedModel, query: str, documents: list[str]) -> EncodeOutcome:
    """Relevance of each document for ``query``, higher is better."""
    if lm.source.kind == "cross-encoder":
        batch = _tokenize(lm, [query] * len(documents), documents)
        t0 = time.perf_counter()
        with torch.inference_mode():
            logits = lm.model(**batch).logits
        scores = logits[:, 0] if logits.shape[-1] == 1 else logits.log_softmax(-1)[:, -1]
        seconds = time.perf_counter() - t0
        return EncodeOutcome(seconds=seconds, tokens=_count(batch), scores=scores.tolist())
    _require(lm, "embedding", "rerank")
    batch = _tokenize(lm, [query, *documents])
    t0 = time.perf_counter()
    vectors = _pooled(lm, batch)
    scores = vectors[1:] @ vectors[0]
    seconds = time.perf_counter() - t0
    return EncodeOutcome(seconds=seconds, tokens=_count(batch), scores=scores.tolist())


def _require(lm: LoadedModel, kind: str, task: str) -> None:
    if lm.source.kind != kind:
        raise StageError(
            "bad-request", f"model {lm.source.name!r} is a {lm.source.kind}; it cannot {task}"
        )


def _tokenize(lm: LoadedModel, texts: list[str], pairs: list[str] | None = None) -> Any:
    batch = lm.tokenizer(texts, pairs, padding=True, truncation=False, return_tensors="pt")
    longest = int(batch["attention_mask"].sum(dim=1).max())
    if longest > lm.context_tokens:
        raise StageError(
            "context-length",
            f"a text for model {lm.source.name!r} has {longest} tokens, more than the "
            f"model's context of {lm.context_tokens} tokens",
        )
    return batch.to(lm.device)


def _pooled(lm: LoadedModel, batch: Any) -> torch.Tensor:
    with torch.inference_mode():
        hidden = lm.model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    mean = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(mean.float(), p=2, dim=1)


def _count(batch: Any) -> int:
    return int(batch["attention_mask"].sum())
