"""Shard degrees and per-GPU memory: the arithmetic every layer must agree on.

A stage runs on k GPUs of one node (tensor parallel). Degrees are powers of two, as
tensor-parallel layouts need head counts divisible by k, plus ``min_shards`` itself when it
is not a power of two. Each GPU holds ``weights / k`` plus ``kv(tokens) / k``.
"""

from __future__ import annotations

from airflow_fate.domain.models import GIB, ModelSpec


def shard_degrees(min_shards: int, max_shards: int, node_gpus: int) -> tuple[int, ...]:
    """Allowed shard counts in ``[min_shards, min(max_shards, node_gpus)]``, ascending."""
    top = min(max_shards, node_gpus)
    out = {min_shards} if min_shards <= top else set()
    k = 1
    while k <= top:
        if k >= min_shards:
            out.add(k)
        k *= 2
    return tuple(sorted(out))


def memory_per_gpu_gib(model: ModelSpec, tokens: int, k: int) -> float:
    """GiB each of k GPUs needs for the weights plus the KV of ``tokens`` tokens."""
    return (model.weights_gib + model.kv_bytes_per_token * tokens / GIB) / k
